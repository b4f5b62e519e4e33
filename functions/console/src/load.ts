import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, isAbort, type Api } from './api.ts';
import { useApi } from './context.ts';

export interface Loaded<T> {
  data: T | undefined;
  /** The latest failure's sentence; cleared by the next success. Earlier data stays shown. */
  error: string | null;
  loading: boolean;
  /** Load again now (after an action changed what the page shows). */
  reload: () => void;
}

/** A running job's status is asked for again this often. */
export const JOB_POLL_MS = 1_500;

/** After a lost answer or a server failure, wait this long before asking again. */
const RETRY_AFTER_FAILURE_MS = 5_000;

/**
 * Loads what a page shows, and while `pollMs(data)` gives a delay, loads it again after that
 * delay: one request at a time (a slow answer delays the next poll, never piles them up), each
 * aborted when the page changes. A failure keeps what was shown and says why.
 */
export function useLoad<T>(
  load: (api: Api, signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  pollMs: (data: T) => number | null = () => null,
): Loaded<T> {
  const api = useApi();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);
  const poll = useRef(pollMs);
  poll.current = pollMs;
  const loader = useRef(load);
  loader.current = load;

  // New inputs: what was shown belongs to the old ones.
  useEffect(() => {
    setData(undefined);
    setError(null);
  }, deps);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      setLoading(true);
      let next: number | null;
      try {
        const value = await loader.current(api, controller.signal);
        if (controller.signal.aborted) return;
        setData(value);
        setError(null);
        next = poll.current(value);
      } catch (failure) {
        if (controller.signal.aborted || isAbort(failure)) return;
        setError(failure instanceof Error ? failure.message : String(failure));
        // A refusal (4xx) will not change by asking again; a lost or failed answer may.
        next = failure instanceof ApiError && failure.status >= 400 && failure.status < 500 && failure.status !== 429 ? null : RETRY_AFTER_FAILURE_MS;
      }
      setLoading(false);
      if (next !== null) timer = setTimeout(run, next);
    };
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [api, generation, ...deps]);

  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  return { data, error, loading, reload };
}

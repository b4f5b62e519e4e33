/**
 * The console's only way to the server: the public API at this origin, with the signed-in user's
 * key. Every failure becomes an ApiError whose message is a sentence to show as it is: the API's
 * own `message` (Bread routes) or `error.message` (the OpenAI-shaped chat routes), or, when no
 * answer came, what happened and what to do.
 */

/** A request that takes longer than this gives up with a sentence, so nothing waits forever. */
const REQUEST_TIMEOUT_MS = 30_000;

export class ApiError extends Error {
  constructor(
    message: string,
    /** 0 when no answer came (network failure, timeout). */
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Default REQUEST_TIMEOUT_MS; null for streams, which the caller stops. */
  timeoutMs?: number | null;
}

export type UnauthorizedHandler = (error: ApiError) => void;

export class Api {
  constructor(
    private readonly key: string,
    /** Told when a call answers 401: the key was revoked mid-session. */
    private readonly onUnauthorized: UnauthorizedHandler = () => {},
  ) {}

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('GET', path, options);
  }

  post<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('POST', path, options);
  }

  /** The raw answer of a successful call (streams); failures throw ApiError as for JSON calls. */
  async fetch(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const timeoutMs = options.timeoutMs === undefined ? REQUEST_TIMEOUT_MS : options.timeoutMs;
    const signals = [options.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)].filter((s): s is AbortSignal => !!s);
    let response: Response;
    try {
      response = await fetch(withQuery(path, options.query), {
        method,
        headers: {
          authorization: `Bearer ${this.key}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: signals.length ? AbortSignal.any(signals) : undefined,
      });
    } catch (error) {
      throw requestFailure(error, options.signal);
    }
    if (!response.ok) {
      const failure = new ApiError(await errorSentence(response), response.status);
      if (response.status === 401) this.onUnauthorized(failure);
      throw failure;
    }
    return response;
  }

  private async json<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const response = await this.fetch(method, path, options);
    try {
      return (await response.json()) as T;
    } catch (error) {
      throw requestFailure(error, options.signal);
    }
  }
}

/** `/v1/repo/{name}` with each segment encoded, so any stored name makes a valid path. */
export function apiPath(...segments: (string | number)[]): string {
  return segments.map((segment, index) => (index === 0 ? String(segment) : encodeURIComponent(String(segment)))).join('/');
}

function withQuery(path: string, query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined && value !== null) params.set(name, String(value));
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function errorSentence(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const message = body.message ?? body.error?.message;
    if (typeof message === 'string' && message) return message;
  } catch {
    // Not JSON: a proxy's page, say. Its text is no sentence for the user.
  }
  return response.status >= 500
    ? `The server could not answer (HTTP ${response.status}); try again in a moment.`
    : `The request was refused (HTTP ${response.status}).`;
}

function requestFailure(error: unknown, callerSignal: AbortSignal | undefined): Error {
  // The caller stopped it (left the page, pressed Stop): not a failure to show.
  if (callerSignal?.aborted) return callerSignal.reason instanceof Error ? callerSignal.reason : new DOMException('Aborted', 'AbortError');
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return new ApiError('The server took too long to answer; try again in a moment.', 0);
  }
  return new ApiError('Could not reach the server: check your connection, then try again.', 0);
}

/** True for the rejection of a request its caller aborted, which is never shown. */
export const isAbort = (error: unknown) => error instanceof DOMException && error.name === 'AbortError';

import { setImmediate as nextTurn } from 'node:timers/promises';
import { DomainError } from './errors.ts';

export interface BatchResult {
  created: string[];
  failed: Record<string, string>;
}

/**
 * How long a batch works before letting other requests run. A Store that answers at once (SQLite
 * on the embedded runtime) never lets go of the event loop between entries by itself.
 */
const SLICE_MS = 10;

/**
 * Batch creates (bread-api.md Q16): entries run in order, so a later one may use an earlier one
 * as its template; each domain failure is recorded under its name and the rest carry on.
 * Unexpected errors are not a per-entry outcome and propagate.
 */
export async function batchCreate<T>(
  entries: T[],
  nameOf: (entry: T) => string,
  create: (entry: T) => Promise<unknown>,
): Promise<BatchResult> {
  const result: BatchResult = { created: [], failed: {} };
  let sliceStart = performance.now();
  for (const entry of entries) {
    if (performance.now() - sliceStart >= SLICE_MS) {
      await nextTurn();
      sliceStart = performance.now();
    }
    const name = nameOf(entry);
    try {
      await create(entry);
      result.created.push(name);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      result.failed[name] = error.message;
    }
  }
  return result;
}

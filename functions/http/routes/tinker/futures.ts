/**
 * Tinker futures (loops-api.md §2.5): a submit answers `{request_id}`; `retrieve_future` holds the
 * poll up to 30 s (the client gives up at 45 s), then answers `try_again`. A request id names what
 * it waits on — a run's operation or a sampler's sample — so any server over the same Store
 * answers it, after a restart too; the service checks that the caller owns it.
 */
import { NotFoundError } from '#core/errors.ts';

/** What a future answers with once its operation is done: it decides the result's shape. */
export type TrainingAnswer = 'create_model' | 'forward' | 'optim_step' | 'save_weights' | 'save_weights_for_sampler' | 'save_weights_external' | 'load_weights';

export type FutureRef =
  /** A run's operation: `run` the run id, `op` the operation id, `model` the model id the client knows. */
  | { kind: 'op'; run: string; op: string; answer: TrainingAnswer; model: string; samplingSessionSeq?: number }
  /** A sample on a sampler. */
  | { kind: 'sample'; sampler: string; op: string }
  /** Answered at submit: the model was unloaded. */
  | { kind: 'unloaded'; model: string };

const PREFIX = 'tf1.';

export function requestIdOf(ref: FutureRef): string {
  return PREFIX + Buffer.from(JSON.stringify(ref)).toString('base64url');
}

/** The future a request id names; NotFoundError (fatal to the client) for anything this server did not hand out. */
export function parseRequestId(requestId: string): FutureRef {
  const unknown = new NotFoundError(`Future '${requestId}' is unknown; retrieve only request ids this server returned.`);
  if (!requestId.startsWith(PREFIX)) throw unknown;
  try {
    const ref = JSON.parse(Buffer.from(requestId.slice(PREFIX.length), 'base64url').toString('utf8')) as FutureRef;
    if (ref && typeof ref === 'object' && ['op', 'sample', 'unloaded'].includes(ref.kind)) return ref;
  } catch {
    // falls through to the 404
  }
  throw unknown;
}

/** The answer while the operation is still queued or running: the client polls again at once. */
export const tryAgain = (requestId: string) => ({ type: 'try_again' as const, request_id: requestId, queue_state: 'active' as const });

/** An operation failure as the client raises it: input the client can fix is `user`, anything else `server`. */
export function futureError(error: string, errorClass: string) {
  return { error, category: errorClass === 'ValueError' ? ('user' as const) : ('server' as const) };
}

/**
 * Errors on the Loops routes (loops-data-plane.md §3.3–§3.4, §6.4). The app's one error funnel
 * (functions/http/errors.ts) hands every error answer on these paths here, so errors raised by
 * the shared middleware (auth, body limits, unknown routes) take the same shape as the routes' own.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { LoopsError } from '#schemas/loops.ts';

/** The control plane's roots: `/v1/loops/*`, the team root and the legacy trainer-session routes. */
const CONTROL_PLANE = /^\/v1\/(loops|teams|trainer_sessions|trainers)(\/|$)/;
/** The data plane: `run.base_url` and `sampler.base_url`. */
export const DATA_PLANE_PREFIX = '/loops/';

export const isLoopsDataPlane = (path: string) => path.startsWith(DATA_PLANE_PREFIX);
export const isLoopsPath = (path: string) => CONTROL_PLANE.test(path) || isLoopsDataPlane(path);

/** The short codes the SDK quotes next to `06` (§3.3), from the domain's error codes. */
const REASONS: Record<string, string> = {
  INVALID_INPUT: 'invalid_request',
  VALIDATION_ERROR: 'invalid_request',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  RESOURCE_NOT_FOUND: 'not_found',
  RESOURCE_CONFLICT: 'conflict',
  IDEMPOTENCY_CONFLICT: 'idempotency_conflict',
  RUN_INACTIVE: 'run_inactive',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
};

/**
 * The status a Loops client must see. The control plane answers bad input with 400 (Part 1's
 * convention). On the data plane the SDK retries a 400 or 404 submit for an hour, so bad input is
 * 422; and it raises a 503 at once as a shutdown, so a transient fault is 502, which it retries,
 * while a full sampler queue (429, always with Retry-After) is the 503 it waits out.
 */
function loopsStatus(path: string, status: ContentfulStatusCode): ContentfulStatusCode {
  if (!isLoopsDataPlane(path)) return status === 422 ? 400 : status;
  if (status === 400) return 422;
  if (status === 503) return 502;
  // Sampler backpressure: the SDK retries a 503 that carries Retry-After and raises a 429 (§9.4).
  if (status === 429) return 503;
  return status;
}

/** Answers an error in the Loops shape, marking every 4xx but 408 as the server's own (`06`) so the SDK never retries it. */
export function loopsErrorResponse(c: Context, status: ContentfulStatusCode, message: string, code: string | null) {
  const sent = loopsStatus(c.req.path, status);
  const reason = (code && REASONS[code]) ?? code?.toLowerCase() ?? 'error';
  if (sent >= 400 && sent < 500 && sent !== 408) {
    c.header('x-baseten-error-source', '06');
    c.header('x-baseten-error-code', reason);
  }
  return c.json({ error: message, details: { reason } } satisfies LoopsError, sent);
}

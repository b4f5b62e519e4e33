import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import { DomainError, RateLimitedError, type ErrorCode } from '#core/errors.ts';
import type { OpenAiError } from '#schemas/chat.ts';
import { isLoopsPath, loopsErrorResponse } from './routes/loops/errors.ts';
import { isTinkerPath } from './routes/tinker/requests.ts';

/** The one mapping from domain error codes to HTTP statuses. */
export const STATUS_OF: Record<ErrorCode, ContentfulStatusCode> = {
  INVALID_INPUT: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  RESOURCE_NOT_FOUND: 404,
  RESOURCE_CONFLICT: 409,
  IDEMPOTENCY_CONFLICT: 409,
  RUN_INACTIVE: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  VALIDATION_ERROR: 422,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INSUFFICIENT_STORAGE: 507,
  INTERNAL_ERROR: 500,
};

/** Statuses that a retry of the same request cannot fix (bread-api.md §1.6 rule 1). */
const NOT_RETRYABLE = new Set([400, 401, 402, 403, 404, 405, 409, 410, 413, 415, 422]);

export interface ErrorBody {
  message: string;
  code: string | null;
  detail?: { loc: (string | number)[]; msg: string; type: string }[];
}

/** The inference routes answer OpenAI clients, so their errors take OpenAI's shape (bread-api.md §15). */
const OPENAI_PATHS = new Set(['/v1/chat/completions', '/v1/models']);

const OPENAI_CODES: Partial<Record<string, string>> = { UNAUTHORIZED: 'invalid_api_key', RESOURCE_NOT_FOUND: 'model_not_found' };

export function errorResponse(c: Context, requested: ContentfulStatusCode, body: ErrorBody, retryable?: boolean) {
  // The Tinker routes answer bad input with 400 and a sentence, which the SDK raises at once (loops-api.md §2.5).
  const status = requested === 422 && isTinkerPath(c.req.path) ? 400 : requested;
  const shouldRetry = retryable ?? !NOT_RETRYABLE.has(status);
  c.header('x-should-retry', String(shouldRetry));
  if (retryable && status === 409) c.header('retry-after', '1');
  if (OPENAI_PATHS.has(c.req.path)) return c.json(openAiError(status, body), status);
  if (isLoopsPath(c.req.path)) return loopsErrorResponse(c, status, body.message, body.code);
  return c.json(body, status);
}

function openAiError(status: number, { message, code }: ErrorBody): OpenAiError {
  const type = status >= 500 ? 'server_error' : status === 401 ? 'authentication_error' : 'invalid_request_error';
  return { error: { message, type, code: (code && OPENAI_CODES[code]) ?? code?.toLowerCase() ?? null, param: null } };
}

/** Turns a failed zod validation into the 422 envelope, with field-level detail. */
export function validationErrorResponse(c: Context, target: string, error: z.ZodError) {
  const detail = error.issues.map((issue) => ({
    loc: [target === 'json' ? 'body' : target, ...issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part))],
    msg: issue.message,
    type: issue.code,
  }));
  const first = error.issues[0];
  // Name checks carry their full sentence (bread-api.md §1.7); other issues name their field.
  const message = !first
    ? 'Invalid request'
    : first.code === 'custom' || first.path.length === 0
      ? first.message
      : `${first.path.join('.')}: ${first.message}`;
  return errorResponse(c, 422, { message, code: 'VALIDATION_ERROR', detail });
}

export function handleError(error: Error, c: Context) {
  if (error instanceof DomainError) {
    // Clients wait this long before they retry (bread-api.md §1.6 rule 2; capped at 60 s by them).
    if (error instanceof RateLimitedError) c.header('retry-after', String(error.retryAfterS));
    return errorResponse(c, STATUS_OF[error.code], { message: error.message, code: error.code }, error.retryable);
  }
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    if (status === 400 && /JSON/i.test(error.message)) {
      return errorResponse(c, 422, { message: 'Request body is not valid JSON', code: 'VALIDATION_ERROR' });
    }
    if (status === 413) return errorResponse(c, 413, { message: 'Request body too large', code: 'PAYLOAD_TOO_LARGE' });
    if (status === 415) return errorResponse(c, 415, { message: 'Unsupported Media Type: send application/json', code: 'UNSUPPORTED_MEDIA_TYPE' });
    return errorResponse(c, status, { message: error.message, code: status >= 500 ? 'INTERNAL_ERROR' : 'INVALID_INPUT' });
  }
  console.error(JSON.stringify({ level: 'error', msg: 'unhandled error', path: c.req.path, error: String(error.stack ?? error) }));
  return errorResponse(c, 500, { message: 'Internal server error', code: 'INTERNAL_ERROR' });
}

export function notFound(c: Context) {
  return errorResponse(c, 404, { message: `Route not found: ${c.req.method} ${c.req.path}`, code: 'RESOURCE_NOT_FOUND' });
}

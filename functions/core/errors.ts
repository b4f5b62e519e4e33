/**
 * Domain errors. Each carries the machine code of the API's error envelope; the HTTP layer maps
 * codes to statuses in one place (functions/http/errors.ts).
 */
export type ErrorCode =
  | 'INVALID_INPUT'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'RESOURCE_NOT_FOUND'
  | 'RESOURCE_CONFLICT'
  | 'IDEMPOTENCY_CONFLICT'
  | 'RUN_INACTIVE'
  | 'VALIDATION_ERROR'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'INSUFFICIENT_STORAGE'
  | 'INTERNAL_ERROR';

export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
  /** Whether repeating the same request could succeed (drives `x-should-retry`). */
  readonly retryable: boolean = false;
}

/** A prerequisite is not met or a reference is invalid (400). */
export class InvalidInputError extends DomainError {
  readonly code = 'INVALID_INPUT';
}

export class UnauthorizedError extends DomainError {
  readonly code = 'UNAUTHORIZED';
  constructor(message = 'Invalid API key') {
    super(message);
  }
}

export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN';
}

export class NotFoundError extends DomainError {
  readonly code = 'RESOURCE_NOT_FOUND';
  constructor(message = 'Resource not found') {
    super(message);
  }
}

/** Immutability conflicts and refused deletes (409). */
export class ConflictError extends DomainError {
  readonly code = 'RESOURCE_CONFLICT';
}

/** A concurrent request holds the resource; the same request may succeed shortly (409, retryable). */
export class BusyError extends ConflictError {
  override readonly retryable = true;
}

/** An idempotency key already names a different request (409). */
export class IdempotencyConflictError extends DomainError {
  readonly code = 'IDEMPOTENCY_CONFLICT';
}

/** A training run that is deactivated or failed takes no more requests (410); the message says which and why. */
export class RunInactiveError extends DomainError {
  readonly code = 'RUN_INACTIVE';
}

/** A body over a route's own size limit (413). */
export class PayloadTooLargeError extends DomainError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** A body in a format the route does not take (415). */
export class UnsupportedMediaTypeError extends DomainError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
}

/** Input that fails validation (422). */
export class ValidationError extends DomainError {
  readonly code = 'VALIDATION_ERROR';
}

/**
 * Too many requests wait already; the same request may succeed after `retryAfterS` seconds (429,
 * with `retry-after`). A front whose protocol retries another status under load maps it there.
 */
export class RateLimitedError extends DomainError {
  readonly code = 'RATE_LIMITED';
  override readonly retryable = true;
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message);
  }
}

/** Nothing can serve the request right now (no sampler answered in time, or it stopped); retry (503). */
export class UnavailableError extends DomainError {
  readonly code = 'UNAVAILABLE';
  override readonly retryable = true;
}

/**
 * The server's database is damaged (the embedded SQLite file failed its checks); nothing is served
 * from it until an operator restores a backup (503). The message is for API clients: the file and
 * the restore command go to the operator through the server's log and start-up output.
 */
export class StorageDamagedError extends UnavailableError {
  constructor(message = 'The server\'s database is damaged and cannot be used; the server operator must restore it from a backup.') {
    super(message);
  }
}

/**
 * The server's disk is full (507). A 5xx stays retryable (bread-api.md §1.6): every write is safe
 * to repeat, and space can come back once something is cleaned up.
 */
export class InsufficientStorageError extends DomainError {
  readonly code = 'INSUFFICIENT_STORAGE';
  override readonly retryable = true;
  constructor(message = 'The server has no space left to store this request; free disk space on the server and retry.') {
    super(message);
  }
}

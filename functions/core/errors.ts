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
  | 'VALIDATION_ERROR'
  | 'PAYLOAD_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
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

/** Input that fails validation (422). */
export class ValidationError extends DomainError {
  readonly code = 'VALIDATION_ERROR';
}

/** Nothing can serve the request right now (no sampler answered in time, or it stopped); retry (503). */
export class UnavailableError extends DomainError {
  readonly code = 'UNAVAILABLE';
  override readonly retryable = true;
}

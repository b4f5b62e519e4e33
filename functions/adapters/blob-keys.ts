/**
 * Blob key rules shared by every Blobs adapter, so that a key that works locally works on S3 and
 * the other way round (the same reason SqliteStore enforces DynamoDB's limits).
 *
 * A key is a relative path: `/`-separated segments, none empty, `.` or `..`, no control
 * characters, at most 1024 UTF-8 bytes (S3's limit). A prefix is the start of a key: empty, or
 * segments that may end with `/` (the last one may be partial: `jobs/1` matches `jobs/10/x`).
 */
import type { BlobRange } from '#ports/blobs.ts';

export class InvalidBlobKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidBlobKeyError';
  }
}

const MAX_KEY_BYTES = 1024;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Presigned URLs live between one second and seven days (S3's SigV4 limit). */
export const MIN_PRESIGN_SECONDS = 1;
export const MAX_PRESIGN_SECONDS = 604_800;

export function assertBlobKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new InvalidBlobKeyError('A blob key must be a non-empty string');
  if (key.endsWith('/')) throw new InvalidBlobKeyError(`Blob key ${JSON.stringify(key)} ends with "/"; that is a prefix, not a key`);
  assertSegments(key, key.split('/'));
}

export function assertBlobPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidBlobKeyError('A blob prefix must be a string');
  if (prefix === '') return;
  const segments = prefix.split('/');
  if (prefix.endsWith('/')) segments.pop();
  assertSegments(prefix, segments);
}

function assertSegments(value: string, segments: string[]): void {
  if (Buffer.byteLength(value) > MAX_KEY_BYTES) {
    throw new InvalidBlobKeyError(`Blob key is longer than ${MAX_KEY_BYTES} bytes`);
  }
  if (CONTROL.test(value)) throw new InvalidBlobKeyError(`Blob key ${JSON.stringify(value)} contains a control character`);
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidBlobKeyError(
        `Blob key ${JSON.stringify(value)} must be a relative path without empty, "." or ".." segments`,
      );
    }
  }
}

export function assertPresignExpiry(expiresInSeconds: number): void {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < MIN_PRESIGN_SECONDS || expiresInSeconds > MAX_PRESIGN_SECONDS) {
    throw new RangeError(
      `A presigned URL must expire in ${MIN_PRESIGN_SECONDS} to ${MAX_PRESIGN_SECONDS} seconds (got ${expiresInSeconds})`,
    );
  }
}

/** Checks a range; returns false when it selects no bytes at all (end equal to start). */
export function assertBlobRange(range: BlobRange): boolean {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`Blob range start must be a non-negative integer (got ${start})`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new RangeError(`Blob range end must be an integer not below start (got ${start}..${end})`);
  }
  return end === undefined || end > start;
}

/** S3's listing order: byte order of the UTF-8 encoding (not JavaScript's UTF-16 order). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

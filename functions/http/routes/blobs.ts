import type { Context } from 'hono';
import { z } from 'zod';
import { InvalidBlobKeyError } from '#adapters/blob-keys.ts';
import { ForbiddenError, InvalidInputError, NotFoundError } from '#core/errors.ts';
import type { BlobStream } from '#adapters/embedded/local-blobs.ts';
import { verifyBlobSignature } from '#adapters/embedded/local-blobs.ts';
import type { BlobRange } from '#ports/blobs.ts';
import { systemClock, type Clock } from '#ports/clock.ts';
import { ErrorResponse } from '#schemas/bread.ts';
import type { App } from '../openapi.ts';

/** What the route reads blobs through: LocalBlobs on the embedded runtime. */
export interface BlobSource {
  size(key: string): Promise<number | undefined>;
  openRead(key: string, range?: BlobRange): Promise<BlobStream | undefined>;
}

export interface BlobRouteOptions {
  blobs: BlobSource;
  /** The key LocalBlobs signs its presigned URLs with. */
  signingKey: string | Uint8Array;
  clock?: Clock;
}

const REFUSED = {
  missing: 'This blob URL is missing its expires or signature parameter; ask the API for a new download URL',
  invalid: 'This blob URL has an invalid signature; ask the API for a new download URL',
  expired: 'This blob URL has expired; ask the API for a new download URL',
} as const;

const INVALID_KEY = 'This blob URL names a key no blob can have; ask the API for a new download URL';

const errorJson = (description: string) => ({ description, content: { 'application/json': { schema: ErrorResponse } } });
const bytes = (description: string) => ({
  description,
  content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } },
});

/**
 * `GET /v1/blobs/{key}`: serves LocalBlobs' presigned URLs (the embedded stand-in for S3's).
 * The signature in the query is the credential, so this route sits outside bearer auth. The key
 * may span several path segments; a single `Range: bytes=…` is honoured, as S3 does.
 */
export function blobRoutes(app: App, { blobs, signingKey, clock = systemClock }: BlobRouteOptions): void {
  // Documented with a plain `{key}`, routed with a pattern that also matches the slashes in keys
  // (and line breaks, so that a key holding one gets the route's answer, not a bare 404).
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/v1/blobs/{key}',
    tags: ['Blobs'],
    summary: 'Download a blob through a presigned URL (no bearer auth: the signature is the credential)',
    request: {
      params: z.object({ key: z.string().meta({ description: 'The blob key; its slashes stay unencoded' }) }),
      query: z.object({
        expires: z.string().optional().meta({ description: 'Unix time (s) after which the URL is refused' }),
        signature: z.string().optional().meta({ description: 'Hex HMAC-SHA256 of the key and expires' }),
      }),
    },
    responses: {
      200: bytes('The blob'),
      206: bytes('The requested byte range of the blob'),
      400: errorJson('The key is not a valid blob key (an empty, "." or ".." segment, a control character, over 1024 bytes, or reserved)'),
      403: errorJson('Missing, invalid or expired signature'),
      404: errorJson('No blob under this key'),
      416: { description: 'The range starts past the end of the blob' },
    },
  });

  app.get('/v1/blobs/:key{[\\s\\S]+}', async (c) => {
    const key = c.req.param('key');
    const check = verifyBlobSignature(key, c.req.query('expires'), c.req.query('signature'), signingKey, clock.now());
    if (check !== 'valid') throw new ForbiddenError(REFUSED[check]);
    try {
      return await serveBlob(c, blobs, key);
    } catch (error) {
      // The key comes from the URL: a malformed one is the caller's mistake, whoever signed it.
      if (error instanceof InvalidBlobKeyError) throw new InvalidInputError(INVALID_KEY);
      throw error;
    }
  });
}

/** The blob, its byte range, or its size alone (HEAD), under a key whose signature was checked. */
async function serveBlob(c: Context, blobs: BlobSource, key: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
  if (c.req.method === 'HEAD') {
    const size = await blobs.size(key);
    if (size === undefined) throw new NotFoundError('Blob not found');
    return c.body(null, 200, { ...headers, 'content-length': String(size) });
  }

  const requested = c.req.header('range');
  if (requested) {
    const size = await blobs.size(key);
    if (size === undefined) throw new NotFoundError('Blob not found');
    const range = resolveRange(requested, size);
    if (range === 'unsatisfiable') return c.body(null, 416, { 'content-range': `bytes */${size}` });
    if (range) {
      const blob = await blobs.openRead(key, range);
      if (!blob) throw new NotFoundError('Blob not found');
      return c.body(blob.body, 206, {
        ...headers,
        'content-length': String(blob.end - blob.start),
        'content-range': `bytes ${blob.start}-${blob.end - 1}/${blob.size}`,
      });
    }
  }
  const blob = await blobs.openRead(key);
  if (!blob) throw new NotFoundError('Blob not found');
  return c.body(blob.body, 200, { ...headers, 'content-length': String(blob.size) });
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range against a blob of `size` bytes, as [start, end);
 * undefined (serve the whole blob) for anything else, as HTTP allows.
 */
export function resolveRange(header: string, size: number): Required<BlobRange> | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size : Math.min(Number(last) + 1, size) };
}

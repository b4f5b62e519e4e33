import type { MiddlewareHandler } from 'hono';
import { errorResponse } from '../errors.ts';

const JSON_TYPE = /^application\/([\w.-]+\+)?json\b/i;

/**
 * Reads the request body once, counting real bytes rather than trusting Content-Length, and
 * refuses bodies over `maxBytes` with 413. An empty body under a JSON content type reads as `{}`:
 * the Python SDK sends exactly that on bodiless POSTs and DELETEs (bread-api.md §1.3).
 */
export function readBody(maxBytes: number): MiddlewareHandler {
  const tooLarge = (c: Parameters<MiddlewareHandler>[0]) =>
    errorResponse(c, 413, { message: `Request body exceeds ${maxBytes} bytes`, code: 'PAYLOAD_TOO_LARGE' });

  return async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return next();
    const declared = Number(c.req.header('content-length') ?? 0);
    if (declared > maxBytes) return tooLarge(c);

    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        return tooLarge(c);
      }
      chunks.push(value);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const isJson = JSON_TYPE.test(c.req.header('content-type') ?? '');
    c.req.raw = new Request(c.req.raw, { body: text.trim() === '' && isJson ? '{}' : text });
    return next();
  };
}

import type { Context, MiddlewareHandler } from 'hono';
import { errorResponse } from '../errors.ts';
import { tooDeepAt, type JsonPath } from './json-depth.ts';

const JSON_TYPE = /^application\/([\w.-]+\+)?json\b/i;
const PROTOBUF_TYPE = /^application\/x-protobuf\b/i;

/**
 * The deepest nesting a body may have, counting the body itself as level 1. DynamoDB stores at
 * most 32 levels in an item, and bodies are stored nearly as they come: a bake's `overrides`
 * become its `config`, which its job record holds one level further down. One level less than
 * DynamoDB's limit keeps every body that passes here storable on AWS.
 */
export const MAX_BODY_DEPTH = 31;

/**
 * Reads the request body once, counting real bytes rather than trusting Content-Length, and
 * refuses bodies over `maxBytes` with 413 and bodies nested deeper than MAX_BODY_DEPTH with 422.
 * An empty body under a JSON content type reads as `{}`: the Python SDK sends exactly that on
 * bodiless POSTs and DELETEs (bread-api.md §1.3).
 */
export function readBody(maxBytes: number): MiddlewareHandler {
  const tooLarge = (c: Context) => errorResponse(c, 413, { message: `Request body exceeds ${maxBytes} bytes`, code: 'PAYLOAD_TOO_LARGE' });

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
    const raw = Buffer.concat(chunks);
    // Signed hooks verify these bytes: the text below may differ (invalid UTF-8, `{}` for empty).
    c.set('rawBody', raw);
    const text = raw.toString('utf8');
    // Every body is checked, not only JSON-typed ones: some handlers parse theirs whatever the type.
    // Protobuf bodies are binary, where a run of `[` bytes (token 91 as int32) is data, not nesting.
    const contentType = c.req.header('content-type') ?? '';
    const tooDeep = PROTOBUF_TYPE.test(contentType) ? undefined : tooDeepAt(text, MAX_BODY_DEPTH);
    if (tooDeep) return nestedTooDeep(c, tooDeep);
    const isJson = JSON_TYPE.test(contentType);
    // The bytes, not the text: a string body would make the Request add `Content-Type: text/plain`
    // to a request that sent none (an empty POST), which a route with an optional JSON body refuses.
    c.req.raw = new Request(c.req.raw, { body: text.trim() === '' && isJson ? '{}' : raw });
    return next();
  };
}

function nestedTooDeep(c: Context, path: JsonPath) {
  const msg = `nested more than ${MAX_BODY_DEPTH} levels deep; a request body may nest JSON at most ${MAX_BODY_DEPTH} levels`;
  return errorResponse(c, 422, {
    message: `${path.join('.')}: ${msg}`,
    code: 'VALIDATION_ERROR',
    detail: [{ loc: ['body', ...path], msg, type: 'too_deep' }],
  });
}

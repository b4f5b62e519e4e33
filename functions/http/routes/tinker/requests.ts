/**
 * What every Tinker route shares: where it lives, its options, and how it reads a JSON body. Bad
 * input is a ValidationError, which the Tinker routes answer with 400 and a sentence: the SDK
 * raises a 400 with a body at once, and takes a bare 400 for a proxy's and retries it (§2.2).
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import type { z } from 'zod';
import { ValidationError } from '#core/errors.ts';

/** `TINKER_BASE_URL` is `{origin}/tinker`; the SDK appends `/api/v1/…`. */
export const TINKER_PREFIX = '/tinker/';
export const API = '/tinker/api/v1';

export const isTinkerPath = (path: string) => path.startsWith(TINKER_PREFIX);

export interface TinkerRouteOptions {
  /** Where trainer and sampler jobs reach this API's relay routes; unset, the origin each request arrived at. */
  relayUrl?: string;
  /** How long `retrieve_future` waits for a result before answering `try_again`; default 30 s, under the client's 45 s timeout. */
  pollHoldMs?: number;
}

export const DEFAULT_POLL_HOLD_MS = 30_000;

export const relayUrlOf = (c: Context, options: TinkerRouteOptions) => options.relayUrl ?? new URL(c.req.url).origin;

/** The body parsed by `schema`; fields the schema does not name are dropped, as newer SDKs send more. */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = JSON.parse(text || '{}');
  } catch {
    throw new ValidationError('The request body is not valid JSON; send a JSON object.');
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new ValidationError(issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message);
}

/** The key that makes a retried submit the same operation when the body carries no sequence number: the HTTP layer's, else a fresh one. */
export const retryKey = (c: Context) => c.req.header('x-idempotency-key') || randomUUID();

import type { MiddlewareHandler } from 'hono';
import type { IdempotencyService } from '#core/idempotency.ts';
import type { AppEnv } from '../env.ts';

const REPLAYED_HEADERS = ['content-type', 'x-should-retry'];

/**
 * Replays the stored answer to a non-GET request repeated with the same `Idempotency-Key`
 * (bread-api.md §1.6 rule 4). Server errors are not stored, so a retry after one runs again;
 * nor are answers marked `Cache-Control: no-store` (they carry a secret, such as a new API key).
 */
export function idempotency(service: IdempotencyService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header('idempotency-key');
    if (!key || c.req.method === 'GET' || c.req.method === 'HEAD') return next();

    const url = new URL(c.req.url);
    const claim = await service.claim({
      caller: c.get('keyHash'),
      method: c.req.method,
      path: `${url.pathname}${url.search}`,
      key,
      body: await c.req.text(),
    });
    if (claim.kind === 'replay') {
      const { status, body, headers } = claim.response;
      return new Response(body, { status, headers });
    }
    try {
      await next();
    } catch (error) {
      await claim.release();
      throw error;
    }
    if (c.res.status >= 500 || /\bno-store\b/i.test(c.res.headers.get('cache-control') ?? '')) return claim.release();
    const headers: Record<string, string> = {};
    for (const name of REPLAYED_HEADERS) {
      const value = c.res.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    await claim.release({ status: c.res.status, body: await c.res.clone().text(), headers });
  };
}

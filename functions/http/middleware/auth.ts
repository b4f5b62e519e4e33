import type { MiddlewareHandler } from 'hono';
import { hashApiKey, type ApiKeyService } from '#core/api-keys.ts';
import type { AppEnv } from '../env.ts';

/**
 * Authenticates `Authorization: Bearer <key>` (also `Api-Key <key>` and `X-API-Key`, which Loops
 * clients send) and applies the user override: the `X-User-Id` header, else the `user_id` query.
 */
export function authenticate(apiKeys: ApiKeyService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const apiKey = presentedKey(c.req.header('authorization'), c.req.header('x-api-key'));
    const override = c.req.header('x-user-id') || c.req.query('user_id') || undefined;
    c.set('actor', await apiKeys.authenticate(apiKey, override));
    c.set('keyHash', hashApiKey(apiKey ?? ''));
    await next();
  };
}

function presentedKey(authorization: string | undefined, xApiKey: string | undefined): string | undefined {
  const match = authorization?.match(/^(?:Bearer|Api-Key)\s+(.+)$/i);
  return match?.[1]?.trim() || xApiKey?.trim() || undefined;
}

import type { MiddlewareHandler } from 'hono';
import { hashApiKey, type ApiKeyService } from '#core/api-keys.ts';
import type { AppEnv } from '../env.ts';

/**
 * Authenticates `Authorization: Bearer <key>` (also `Api-Key <key>` and `X-API-Key`, which Loops
 * clients send) and applies the user override: the `X-User-Id` header, else the `user_id` query.
 * `stripKeyPrefix`: a prefix a client must put before the key (Tinker's `tml-`), removed before the lookup.
 */
export function authenticate(apiKeys: ApiKeyService, options: { stripKeyPrefix?: string } = {}): MiddlewareHandler<AppEnv> {
  const strip = (key: string | undefined) => (key && options.stripKeyPrefix && key.startsWith(options.stripKeyPrefix) ? key.slice(options.stripKeyPrefix.length) : key);
  return async (c, next) => {
    const apiKey = strip(presentedKey(c.req.header('authorization'), c.req.header('x-api-key')));
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

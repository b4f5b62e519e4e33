import { createRoute } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { ForbiddenError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyListQuery, ApiKeyPath } from '#schemas/admin.ts';
import { DeleteResponse } from '#schemas/bread.ts';
import type { AppEnv } from '../env.ts';
import { bearer, body, errors, json, type App } from '../openapi.ts';

const tags = ['Admin'];

const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!c.get('actor').isAdmin) throw new ForbiddenError('This route requires a master API key');
  await next();
};

export function adminRoutes(app: App, { apiKeys }: Services): void {
  app.use('/v1/admin/*', requireAdmin);

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/keys',
      tags,
      security: bearer,
      summary: 'Create an API key for a user',
      description: 'Requires a master key. The key is returned once; only its hash is stored.',
      request: { body: body(ApiKeyCreate) },
      responses: { 201: json(ApiKeyCreated, 'Created'), ...errors(403, 422) },
    }),
    async (c) => {
      // The plaintext key must not be cached anywhere, the idempotency store included.
      c.header('cache-control', 'no-store');
      return c.json(await apiKeys.create(c.req.valid('json')), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/keys',
      tags,
      security: bearer,
      summary: "List a user's API keys",
      request: { query: ApiKeyListQuery },
      responses: { 200: json(ApiKeyList, 'Keys, without their secrets'), ...errors(403, 422) },
    }),
    async (c) => c.json({ keys: await apiKeys.list(c.req.valid('query').user_id) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/admin/keys/{key_id}',
      tags,
      security: bearer,
      summary: 'Revoke an API key',
      request: { params: ApiKeyPath },
      responses: { 200: json(DeleteResponse, 'Revoked'), ...errors(403, 404, 422) },
    }),
    async (c) => {
      await apiKeys.revoke(c.req.valid('param').key_id);
      return c.json({ message: 'API key revoked' }, 200);
    },
  );
}

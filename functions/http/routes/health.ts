import { createRoute } from '@hono/zod-openapi';
import { HealthResponse } from '#schemas/bread.ts';
import { json, type App } from '../openapi.ts';

export const API_VERSION = '0.1.0';

export function healthRoutes(app: App): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/health',
      tags: ['Health'],
      summary: 'Health (no auth)',
      responses: { 200: json(HealthResponse, 'The API is up') },
    }),
    (c) => c.json({ status: 'healthy' as const, api: 'bread-api', version: API_VERSION }, 200),
  );
}

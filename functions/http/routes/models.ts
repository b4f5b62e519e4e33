import { createRoute } from '@hono/zod-openapi';
import { NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { DownloadUrlResponse, ModelDownloadQuery } from '#schemas/bread.ts';
import { bearer, errors, json, type App } from '../openapi.ts';

export function modelRoutes(app: App, { models }: Services): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/models/download',
      tags: ['Models'],
      security: bearer,
      summary: 'Presigned URL for a checkpoint by model name',
      request: { query: ModelDownloadQuery },
      responses: { 200: json(DownloadUrlResponse, 'A time-limited URL for the weights archive'), ...errors(404, 422) },
    }),
    async (c) => {
      await models.locateCheckpoint(c.get('actor'), c.req.valid('query').name);
      // Checkpoint archives are written by bake jobs; with none stored there is nothing to sign.
      throw new NotFoundError('Checkpoint archive not found');
    },
  );
}

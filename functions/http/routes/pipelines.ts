import { createRoute } from '@hono/zod-openapi';
import type { Services } from '#core/services.ts';
import { PipelineResponse } from '#schemas/pipelines.ts';
import { BakePath, bearer, errors, json, type App } from '../openapi.ts';

const tags = ['Pipelines'];
const path = '/v1/repo/{repo_name}/bakes/{bake_name}/pipeline';

/** One call that runs every missing job a bake needs, in dependency order (core/pipelines). */
export function pipelineRoutes(app: App, { pipelines }: Services): void {
  app.openapi(
    createRoute({
      method: 'post',
      path,
      tags,
      security: bearer,
      summary: "Run every missing job of the bake's recreation plan (idempotent)",
      description:
        'Runs stim then rollout for each dataset target, parent bakes first, then the bake, one job after another; jobs already ' +
        'complete are skipped. Returns at once; follow it with GET, or with the `pipeline.completed` and `pipeline.failed` webhook ' +
        'events. While it runs, a repeated POST returns the same pipeline; after it failed, a POST starts again from the failed step.',
      request: { params: BakePath },
      responses: { 202: json(PipelineResponse, 'The pipeline'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json(await pipelines.run(c.get('actor'), repo_name, bake_name), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path,
      tags,
      security: bearer,
      summary: "The bake's pipeline",
      request: { params: BakePath },
      responses: { 200: json(PipelineResponse, 'The pipeline as it stands; 404 before any run'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json(await pipelines.get(c.get('actor'), repo_name, bake_name), 200);
    },
  );
}

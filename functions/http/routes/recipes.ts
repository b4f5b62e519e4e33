import { createRoute } from '@hono/zod-openapi';
import { DependencyGraph, RecreationPlan } from '#schemas/bread.ts';
import type { Services } from '#core/services.ts';
import { BakePath, bearer, errors, json, type App } from '../openapi.ts';

const tags = ['Recipes'];

export function recipeRoutes(app: App, { recipes }: Services): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/repo/{repo_name}/recipe/{bake_name}/dependency-graph',
      tags,
      security: bearer,
      summary: 'Everything one bake depends on',
      request: { params: BakePath },
      responses: { 200: json(DependencyGraph, 'Bakes, targets and prompts with dependent → dependency edges'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json(await recipes.dependencyGraph(c.get('actor'), repo_name, bake_name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/repo/{repo_name}/recipe/{bake_name}/recreation-plan',
      tags,
      security: bearer,
      summary: 'Topologically sorted steps that rebuild one bake',
      request: { params: BakePath },
      responses: { 200: json(RecreationPlan, 'The plan'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json(await recipes.recreationPlan(c.get('actor'), repo_name, bake_name), 200);
    },
  );
}

import { createRoute } from '@hono/zod-openapi';
import { PaginatedRepoList, RepoCreate, RepoList, RepoListQuery, RepoResponse, RepoTree } from '#schemas/bread.ts';
import type { Services } from '#core/services.ts';
import { bearer, body, errors, json, RepoPath, type App } from '../openapi.ts';

const tags = ['Repos'];

export function repoRoutes(app: App, { repos, recipes }: Services): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/repo',
      tags,
      security: bearer,
      summary: 'List repos',
      description: 'Names only, or with `include_metadata=true` a page of repos with their base models.',
      request: { query: RepoListQuery },
      responses: { 200: json(RepoList.or(PaginatedRepoList), 'Repos, ascending by name'), ...errors(422) },
    }),
    async (c) => {
      const { include_metadata, offset, limit } = c.req.valid('query');
      const actor = c.get('actor');
      if (!include_metadata) return c.json({ repos: await repos.listNames(actor) }, 200);
      return c.json(await repos.listPage(actor, offset ?? 0, limit), 200);
    },
  );

  for (const method of ['post', 'put'] as const) {
    app.openapi(
      createRoute({
        method,
        path: '/v1/repo',
        tags,
        security: bearer,
        summary: method === 'post' ? 'Create a repo' : 'Create or return a repo (deprecated)',
        deprecated: method === 'put',
        request: { body: body(RepoCreate) },
        responses: {
          200: json(RepoResponse, 'The repo already existed'),
          ...(method === 'post' ? { 201: json(RepoResponse, 'Created') } : {}),
          ...errors(400, 409, 422),
        },
      }),
      async (c) => {
        const { created, repo } = await repos.create(c.get('actor'), c.req.valid('json'));
        return c.json(repo, created && method === 'post' ? 201 : 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/repo/{repo_name}',
      tags,
      security: bearer,
      summary: 'Get a repo',
      request: { params: RepoPath },
      responses: { 200: json(RepoResponse, 'The repo'), ...errors(404, 422) },
    }),
    async (c) => c.json(await repos.get(c.get('actor'), c.req.valid('param').repo_name), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/repo/{repo_name}/tree',
      tags,
      security: bearer,
      summary: 'Bake lineage of the whole repo',
      request: { params: RepoPath },
      responses: { 200: json(RepoTree, 'Every bake with its status, checkpoints and parent edges'), ...errors(404, 422) },
    }),
    async (c) => c.json(await recipes.tree(c.get('actor'), c.req.valid('param').repo_name), 200),
  );
}

import { createRoute } from '@hono/zod-openapi';
import { BatchPromptSet, BatchResponse, DeleteResponse, PromptCreate, PromptList, PromptResponse, PromptSet } from '#schemas/bread.ts';
import type { Services } from '#core/services.ts';
import { bearer, body, errors, json, PromptPath, RepoPath, type App } from '../openapi.ts';

const tags = ['Prompts'];
const base = '/v1/repo/{repo_name}/prompts';

export function promptRoutes(app: App, { prompts }: Services): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: base,
      tags,
      security: bearer,
      summary: 'List prompt names',
      request: { params: RepoPath },
      responses: { 200: json(PromptList, 'Prompt names, ascending'), ...errors(404, 422) },
    }),
    async (c) => c.json({ prompts: await prompts.list(c.get('actor'), c.req.valid('param').repo_name) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: base,
      tags,
      security: bearer,
      summary: 'Create a prompt (immutable)',
      request: { params: RepoPath, body: body(PromptCreate) },
      responses: {
        201: json(PromptResponse, 'Created'),
        200: json(PromptResponse, 'An identical prompt already existed'),
        ...errors(404, 409, 422),
      },
    }),
    async (c) => {
      const { prompt_name, ...content } = c.req.valid('json');
      const { created, prompt } = await prompts.create(c.get('actor'), c.req.valid('param').repo_name, prompt_name, content);
      return c.json(prompt, created ? 201 : 200);
    },
  );

  // The literal `batch` segment is registered before `{prompt_name}` so it is never taken for a name.
  for (const method of ['post', 'put'] as const) {
    app.openapi(
      createRoute({
        method,
        path: `${base}/batch`,
        tags,
        security: bearer,
        summary: method === 'post' ? 'Create prompts in a batch' : 'Create prompts in a batch (deprecated)',
        deprecated: method === 'put',
        request: { params: RepoPath, body: body(BatchPromptSet) },
        responses: { 200: json(BatchResponse, 'Per-entry outcome'), ...errors(404, 422) },
      }),
      async (c) => c.json(await prompts.createBatch(c.get('actor'), c.req.valid('param').repo_name, c.req.valid('json').prompts), 200),
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: `${base}/{prompt_name}`,
      tags,
      security: bearer,
      summary: 'Get a prompt',
      request: { params: PromptPath },
      responses: { 200: json(PromptResponse, 'The prompt'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, prompt_name } = c.req.valid('param');
      return c.json(await prompts.get(c.get('actor'), repo_name, prompt_name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: `${base}/{prompt_name}`,
      tags,
      security: bearer,
      summary: 'Create or return a prompt (deprecated)',
      deprecated: true,
      request: { params: PromptPath, body: body(PromptSet) },
      responses: { 200: json(PromptResponse, 'Created or identical'), ...errors(404, 409, 422) },
    }),
    async (c) => {
      const { repo_name, prompt_name } = c.req.valid('param');
      const { prompt } = await prompts.create(c.get('actor'), repo_name, prompt_name, c.req.valid('json'));
      return c.json(prompt, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: `${base}/{prompt_name}`,
      tags,
      security: bearer,
      summary: 'Delete a prompt (legacy)',
      description: 'Refused with 409 while a target uses the prompt.',
      request: { params: PromptPath },
      responses: { 200: json(DeleteResponse, 'Deleted'), ...errors(404, 409, 422) },
    }),
    async (c) => {
      const { repo_name, prompt_name } = c.req.valid('param');
      await prompts.delete(c.get('actor'), repo_name, prompt_name);
      return c.json({ message: 'Prompt deleted successfully' }, 200);
    },
  );
}

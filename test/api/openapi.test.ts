import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_ENTRIES } from '#schemas/bread.ts';
import { NAME_MAX_LENGTH } from '#schemas/names.ts';
import { createTestApp, type TestApp } from '#test/support/app.ts';

/** Every route the API tests drive, by path and method. */
const ROUTES: Record<string, string[]> = {
  '/v1/health': ['get'],
  '/v1/repo': ['get', 'post', 'put'],
  '/v1/repo/{repo_name}': ['get'],
  '/v1/repo/{repo_name}/tree': ['get'],
  '/v1/repo/{repo_name}/prompts': ['get', 'post'],
  '/v1/repo/{repo_name}/prompts/batch': ['post', 'put'],
  '/v1/repo/{repo_name}/prompts/{prompt_name}': ['get', 'put', 'delete'],
  '/v1/repo/{repo_name}/targets': ['get', 'post'],
  '/v1/repo/{repo_name}/targets/batch': ['post', 'put'],
  '/v1/repo/{repo_name}/targets/{target_name}': ['get', 'put', 'delete'],
  '/v1/repo/{repo_name}/bakes': ['get', 'post'],
  '/v1/repo/{repo_name}/bakes/batch': ['post', 'put'],
  '/v1/repo/{repo_name}/bakes/{bake_name}': ['get', 'put', 'delete'],
  '/v1/repo/{repo_name}/recipe/{bake_name}/dependency-graph': ['get'],
  '/v1/repo/{repo_name}/recipe/{bake_name}/recreation-plan': ['get'],
  '/v1/admin/keys': ['get', 'post'],
  '/v1/admin/keys/{key_id}': ['delete'],
  '/v1/chat/completions': ['post'],
  '/v1/models': ['get'],
};

const DEPRECATED = [
  ['put', '/v1/repo'],
  ['put', '/v1/repo/{repo_name}/prompts/batch'],
  ['put', '/v1/repo/{repo_name}/prompts/{prompt_name}'],
  ['put', '/v1/repo/{repo_name}/targets/batch'],
  ['put', '/v1/repo/{repo_name}/targets/{target_name}'],
  ['put', '/v1/repo/{repo_name}/bakes/batch'],
  ['put', '/v1/repo/{repo_name}/bakes/{bake_name}'],
] as const;

let api: TestApp;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let doc: any;
beforeAll(async () => {
  api = await createTestApp();
  const response = await api.request('GET', '/openapi.json', { key: null });
  expect(response.status).toBe(200);
  doc = response.body;
});
afterAll(() => api.close());

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
  });

  it.each(Object.entries(ROUTES))('documents %s', (path, methods) => {
    expect(Object.keys(doc.paths)).toContain(path);
    for (const method of methods) expect(doc.paths[path], `${method} ${path}`).toHaveProperty(method);
  });

  it.each(DEPRECATED)('marks %s %s deprecated', (method, path) => {
    expect(doc.paths[path][method].deprecated).toBe(true);
  });

  it('documents the bearer scheme and the error body', () => {
    expect(doc.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.ErrorResponse.properties).toHaveProperty('message');
    expect(doc.components.schemas.ErrorResponse.properties).toHaveProperty('code');
  });

  it('documents 401 on authenticated routes', () => {
    expect(doc.paths['/v1/repo'].get.responses).toHaveProperty('401');
    expect(doc.paths['/v1/repo/{repo_name}/prompts'].post.responses).toHaveProperty('409');
  });
});

describe('the rules the server enforces', () => {
  const NAME = { type: 'string', pattern: '^[A-Za-z0-9_.-]+$', minLength: 1, maxLength: NAME_MAX_LENGTH };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const operations = (): [string, string, any][] =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item as object).map(([method, operation]): [string, string, unknown] => [path, method, operation]),
    );

  it('states the name rule on every name in a path', () => {
    const parameters = operations().flatMap(([, , operation]) => operation.parameters ?? []);
    const names = parameters.filter((parameter: { name: string }) => /^(repo|prompt|target|bake)_name$/.test(parameter.name));
    expect(names.length).toBeGreaterThan(40);
    for (const parameter of names) expect(parameter.schema, parameter.name).toMatchObject(NAME);
  });

  it.each([
    ['RepoCreate', 'repo_name'],
    ['PromptCreate', 'prompt_name'],
    ['ApiKeyCreate', 'user_id'],
  ])('states the name rule on %s.%s', (schema, property) => {
    expect(doc.components.schemas[schema].properties[property]).toMatchObject(NAME);
  });

  it('documents 413 on every route that takes a body, and 415 where the router reads it as JSON', () => {
    const withBodies = operations().filter(([, , operation]) => operation.requestBody);
    expect(withBodies.length).toBeGreaterThan(15);
    for (const [path, method, operation] of withBodies) {
      expect(operation.responses, `413 on ${method} ${path}`).toHaveProperty('413');
      // The chat route reads its body itself, and answers what it cannot parse with 400.
      if (path === '/v1/chat/completions' || !operation.requestBody.content['application/json']) continue;
      // The Loops routes answer every error in the Loops shape (loops-data-plane.md §3.4).
      const shape = /^\/v1\/(loops|teams|trainer_sessions|trainers)(\/|$)/.test(path) ? 'LoopsError' : 'ErrorResponse';
      for (const status of ['413', '415']) {
        expect(operation.responses[status]?.content['application/json'].schema, `${status} on ${method} ${path}`).toEqual({
          $ref: `#/components/schemas/${shape}`,
        });
      }
    }
  });

  it('documents 401 on every route that needs an API key', () => {
    const secured = operations().filter(([, , operation]) => operation.security?.length);
    expect(secured.length).toBeGreaterThan(40);
    for (const [path, method, operation] of secured) expect(operation.responses, `401 on ${method} ${path}`).toHaveProperty('401');
  });

  it('caps the entries of every batch', () => {
    const { BatchPromptSet, BatchTargetCreate, BatchBakeCreate } = doc.components.schemas;
    expect(BatchPromptSet.properties.prompts.maxProperties).toBe(MAX_BATCH_ENTRIES);
    expect(BatchTargetCreate.properties.targets.maxItems).toBe(MAX_BATCH_ENTRIES);
    expect(BatchBakeCreate.properties.bakes.maxItems).toBe(MAX_BATCH_ENTRIES);
  });
});

describe('the OpenAI-compatible routes', () => {
  it('document their bodies, the SSE chunk and the OpenAI error shape', () => {
    const chat = doc.paths['/v1/chat/completions'].post;
    expect(chat.requestBody.required).toBe(true);
    expect(chat.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ChatCompletionRequest' });
    expect(chat.responses[413].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/OpenAiError' });
    expect(Object.keys(chat.responses[200].content)).toEqual(['application/json', 'text/event-stream']);
    expect(chat.responses[404].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/OpenAiError' });
    expect(doc.components.schemas.ChatCompletionChunk.properties.choices.items.properties).toHaveProperty('delta');
    expect(doc.paths['/v1/models'].get.responses[200].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ModelList' });
  });
});

describe('GET /docs', () => {
  it('serves the Swagger UI as HTML without a key', async () => {
    const response = await api.request('GET', '/docs', { key: null });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.text).toContain('/openapi.json');
  });
});

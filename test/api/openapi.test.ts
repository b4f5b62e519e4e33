import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('the OpenAI-compatible routes', () => {
  it('document their bodies, the SSE chunk and the OpenAI error shape', () => {
    const chat = doc.paths['/v1/chat/completions'].post;
    expect(chat.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ChatCompletionRequest' });
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

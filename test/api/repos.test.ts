import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BASE_MODELS, createRepo, createTestApp, expectError, type TestApp } from '#test/support/app.ts';

const conflict = (repo: string, base: string) =>
  `Repository '${repo}' already exists with base_model '${base}'. Repository base_model is immutable and cannot be changed.`;

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
});
afterEach(() => api.close());

describe('POST /v1/repo', () => {
  it('creates a repo with 201', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' });
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('gives a new repo without base_model the default Qwen/Qwen3-32B', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1' } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-32B' });
  });

  it("gives a new repo without base_model the deployment's configured default instead", async () => {
    const toyDefault = await createTestApp({ services: { catalog: { baseModels: BASE_MODELS, defaultBaseModel: 'bakehouse/toy-instruct' } } });
    try {
      const response = await toyDefault.request('POST', '/v1/repo', { body: { repo_name: 'r1', base_model: null } });
      expect(response.status).toBe(201);
      expect(response.body).toEqual({ repo_name: 'r1', base_model: 'bakehouse/toy-instruct' });
      expect((await toyDefault.request('GET', '/v1/repo/r1')).body).toEqual({ repo_name: 'r1', base_model: 'bakehouse/toy-instruct' });
    } finally {
      await toyDefault.close();
    }
  });

  it('treats base_model null like an omitted one', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', base_model: null } });
    expect(response.status).toBe(201);
    expect(response.body.base_model).toBe('Qwen/Qwen3-32B');
  });

  it('answers 200 with the repo for an identical repeat', async () => {
    await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' });
  });

  it('answers 200 when base_model is omitted for an existing repo, whatever its base model', async () => {
    await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1' } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' });
  });

  it('answers 409 with the spec message for a different explicit base_model', async () => {
    await createRepo(api.request, 'my-repo', 'Qwen/Qwen3-32B');
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'my-repo', base_model: 'Qwen/Qwen3-8B' } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('my-repo', 'Qwen/Qwen3-32B'));
    expect(response.body).toEqual({ message: conflict('my-repo', 'Qwen/Qwen3-32B'), code: 'RESOURCE_CONFLICT' });
  });

  it('refuses a base model outside the catalog with 400', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', base_model: 'meta/llama-9000' } });
    expectError(response, 400, 'INVALID_INPUT', "Unsupported base_model 'meta/llama-9000'");
  });

  it('refuses an invalid repo name with 422', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'a b' } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: ' '");
  });

  it('allows a repo named batch (the reservation covers prompts, targets and bakes)', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'batch' } });
    expect(response.status).toBe(201);
  });

  it('refuses a body without repo_name with 422', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { base_model: 'Qwen/Qwen3-8B' } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('ignores unknown top-level keys', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', description: 'extra' } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-32B' });
  });
});

describe('PUT /v1/repo (deprecated)', () => {
  it('answers 200 when it creates the repo', async () => {
    const response = await api.request('PUT', '/v1/repo', { body: { repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-8B' });
    expect((await api.request('GET', '/v1/repo/r1')).status).toBe(200);
  });

  it('answers 200 for an existing repo', async () => {
    await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
    const response = await api.request('PUT', '/v1/repo', { body: { repo_name: 'r1' } });
    expect(response.status).toBe(200);
    expect(response.body.base_model).toBe('Qwen/Qwen3-8B');
  });

  it('answers 409 for a different explicit base_model', async () => {
    await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
    const response = await api.request('PUT', '/v1/repo', { body: { repo_name: 'r1', base_model: 'Qwen/Qwen3-32B' } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('r1', 'Qwen/Qwen3-8B'));
  });
});

describe('GET /v1/repo/{repo_name}', () => {
  it('returns the repo', async () => {
    await createRepo(api.request, 'r1');
    const response = await api.request('GET', '/v1/repo/r1');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repo_name: 'r1', base_model: 'Qwen/Qwen3-32B' });
  });

  it('answers 404 naming the repo', async () => {
    const response = await api.request('GET', '/v1/repo/x');
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'x' not found");
    expect(response.body).toEqual({ message: "Repository 'x' not found", code: 'RESOURCE_NOT_FOUND' });
  });

  it('refuses a percent-encoded slash in the name with 422', async () => {
    const response = await api.request('GET', '/v1/repo/r%2Fx');
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });

  it('decodes a path parameter only once: %252F is a literal %2F', async () => {
    const response = await api.request('GET', '/v1/repo/r%252Fx');
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '%'");
  });

  it('refuses a name of 129 characters in the path with 422', async () => {
    const response = await api.request('GET', `/v1/repo/${'a'.repeat(129)}`);
    expectError(response, 422, 'VALIDATION_ERROR', 'Name must be at most 128 characters');
  });

  it('decodes a percent-encoded name once before looking it up', async () => {
    await createRepo(api.request, 'r.1');
    const response = await api.request('GET', '/v1/repo/r%2E1');
    expect(response.status).toBe(200);
    expect(response.body.repo_name).toBe('r.1');
  });
});

describe('GET /v1/repo', () => {
  beforeEach(async () => {
    for (const [name, base] of [
      ['charlie', 'Qwen/Qwen3-8B'],
      ['alpha', 'Qwen/Qwen3-32B'],
      ['bravo', 'bakehouse/toy-instruct'],
    ] as const) {
      await createRepo(api.request, name, base);
    }
  });

  it('lists names ascending without metadata', async () => {
    const response = await api.request('GET', '/v1/repo');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repos: ['alpha', 'bravo', 'charlie'] });
  });

  it('ignores offset and limit without metadata', async () => {
    const response = await api.request('GET', '/v1/repo?offset=1&limit=1');
    expect(response.body).toEqual({ repos: ['alpha', 'bravo', 'charlie'] });
  });

  it('lists a page with base models when include_metadata=true', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&offset=1&limit=1');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      repos: [{ repo_name: 'bravo', base_model: 'bakehouse/toy-instruct' }],
      offset: 1,
      limit: 1,
      has_more: true,
      total: 3,
    });
  });

  it('reports has_more false on the last page', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&offset=2&limit=5');
    expect(response.body).toEqual({
      repos: [{ repo_name: 'charlie', base_model: 'Qwen/Qwen3-8B' }],
      offset: 2,
      limit: 5,
      has_more: false,
      total: 3,
    });
  });

  it('returns every remaining repo and echoes their count as limit when limit is omitted', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&offset=1');
    expect(response.body).toEqual({
      repos: [
        { repo_name: 'bravo', base_model: 'bakehouse/toy-instruct' },
        { repo_name: 'charlie', base_model: 'Qwen/Qwen3-8B' },
      ],
      offset: 1,
      limit: 2,
      has_more: false,
      total: 3,
    });
  });

  it('defaults offset to 0 with metadata', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true');
    expect(response.body).toMatchObject({ offset: 0, limit: 3, has_more: false, total: 3 });
    expect(response.body.repos.map((repo: { repo_name: string }) => repo.repo_name)).toEqual(['alpha', 'bravo', 'charlie']);
  });

  it('answers an empty page with limit 1 for an offset past the end', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&offset=10');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repos: [], offset: 10, limit: 1, has_more: false, total: 3 });
  });

  it('refuses limit 0 with 422', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&limit=0');
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a negative offset with 422', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=true&offset=-1');
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a non-boolean include_metadata with 422', async () => {
    const response = await api.request('GET', '/v1/repo?include_metadata=maybe');
    expectError(response, 422, 'VALIDATION_ERROR');
  });
});

describe('GET /v1/repo/{repo_name}/tree', () => {
  it('returns the base model and no bakes for an empty repo', async () => {
    await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
    const response = await api.request('GET', '/v1/repo/r1/tree');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ base_model: 'Qwen/Qwen3-8B', bakes: {}, edges: [] });
  });

  it('answers 404 for an unknown repo', async () => {
    const response = await api.request('GET', '/v1/repo/nope/tree');
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_KEY, createRepo, createTestApp, createUserKey, expectError, type TestApp } from '#test/support/app.ts';

const INVALID_KEY = 'Invalid API key';
const OVERRIDE_FORBIDDEN = 'User override requires a master API key';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
});
afterEach(() => api.close());

describe('API keys', () => {
  it('rejects a request without a key with 401 and the spec body', async () => {
    const response = await api.request('GET', '/v1/repo', { key: null });
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ message: INVALID_KEY, code: 'UNAUTHORIZED' });
    expect(response.headers.get('x-should-retry')).toBe('false');
  });

  it('rejects an unknown key with 401 and the spec body', async () => {
    const response = await api.request('GET', '/v1/repo', { key: 'not-a-key' });
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ message: INVALID_KEY, code: 'UNAUTHORIZED' });
    expect(response.headers.get('x-should-retry')).toBe('false');
  });

  it('rejects an Authorization header with an unknown scheme', async () => {
    const response = await api.request('GET', '/v1/repo', { key: null, headers: { authorization: `Basic ${ADMIN_KEY}` } });
    expectError(response, 401, 'UNAUTHORIZED', INVALID_KEY);
  });

  it('serves GET /v1/health without a key', async () => {
    const response = await api.request('GET', '/v1/health', { key: null });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'healthy', api: 'bread-api', version: expect.any(String) });
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('accepts the key as a Bearer token', async () => {
    const response = await api.request('GET', '/v1/repo', { key: null, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(response.status).toBe(200);
  });

  it('accepts the key under the Api-Key scheme', async () => {
    const response = await api.request('GET', '/v1/repo', { key: null, headers: { authorization: `Api-Key ${ADMIN_KEY}` } });
    expect(response.status).toBe(200);
  });

  it('accepts the key in an X-API-Key header', async () => {
    const response = await api.request('GET', '/v1/repo', { key: null, headers: { 'x-api-key': ADMIN_KEY } });
    expect(response.status).toBe(200);
  });

  it('accepts a user key created through POST /v1/admin/keys', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', '/v1/repo', { key: aliceKey });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repos: [] });
  });

  it('rejects a key after it is revoked', async () => {
    const created = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' } });
    const revoked = await api.request('DELETE', `/v1/admin/keys/${created.body.key_id}`);
    expect(revoked.status).toBe(200);

    const response = await api.request('GET', '/v1/repo', { key: created.body.api_key });
    expectError(response, 401, 'UNAUTHORIZED', INVALID_KEY);
  });

  it('stores keys hashed: no stored item holds a plaintext key', async () => {
    const created = await api.request('POST', '/v1/admin/keys', {
      body: { user_id: 'alice', name: 'laptop' },
      headers: { 'idempotency-key': 'stainless-node-retry-create-key' },
    });
    expect(created.status).toBe(201);
    const plaintext = [ADMIN_KEY, created.body.api_key as string];
    await api.request('GET', '/v1/repo', { key: created.body.api_key });

    const items = await api.store.items();
    expect(items.length).toBeGreaterThan(0);
    for (const item of items) {
      const stored = JSON.stringify(item);
      for (const key of plaintext) expect(stored).not.toContain(key);
    }
  });
});

describe('user scoping', () => {
  it("never lists another user's repos", async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const bobKey = await createUserKey(api.request, 'bob');
    await createRepo(api.request, 'alice-repo', undefined, { key: aliceKey });

    const response = await api.request('GET', '/v1/repo', { key: bobKey });
    expect(response.body).toEqual({ repos: [] });
  });

  it("answers 404 for another user's repo", async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const bobKey = await createUserKey(api.request, 'bob');
    await createRepo(api.request, 'alice-repo', undefined, { key: aliceKey });

    const response = await api.request('GET', '/v1/repo/alice-repo', { key: bobKey });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'alice-repo' not found");
  });

  it('lets two users own repos of the same name', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const bobKey = await createUserKey(api.request, 'bob');
    await createRepo(api.request, 'shared', 'Qwen/Qwen3-8B', { key: aliceKey });

    const response = await api.request('POST', '/v1/repo', { key: bobKey, body: { repo_name: 'shared', base_model: 'Qwen/Qwen3-32B' } });
    expect(response.status).toBe(201);
  });
});

describe('user override (X-User-Id, user_id)', () => {
  it('refuses X-User-Id naming another user with a non-admin key', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', '/v1/repo', { key: aliceKey, headers: { 'x-user-id': 'bob' } });
    expectError(response, 403, 'FORBIDDEN', OVERRIDE_FORBIDDEN);
    expect(response.body).toEqual({ message: OVERRIDE_FORBIDDEN, code: 'FORBIDDEN' });
  });

  it('refuses a user_id query naming another user with a non-admin key', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', '/v1/repo?user_id=bob', { key: aliceKey });
    expectError(response, 403, 'FORBIDDEN', OVERRIDE_FORBIDDEN);
  });

  it('ignores X-User-Id equal to the caller with a non-admin key', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    await createRepo(api.request, 'mine', undefined, { key: aliceKey });
    const response = await api.request('GET', '/v1/repo', { key: aliceKey, headers: { 'x-user-id': 'alice' } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repos: ['mine'] });
  });

  it('ignores a user_id query equal to the caller with a non-admin key', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', '/v1/repo?user_id=alice', { key: aliceKey });
    expect(response.status).toBe(200);
  });

  it('lets an admin key act as a user through X-User-Id', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const created = await api.request('POST', '/v1/repo', { body: { repo_name: 'for-alice' }, headers: { 'x-user-id': 'alice' } });
    expect(created.status).toBe(201);

    expect((await api.request('GET', '/v1/repo', { key: aliceKey })).body).toEqual({ repos: ['for-alice'] });
    expect((await api.request('GET', '/v1/repo')).body).toEqual({ repos: [] });
  });

  it('lets an admin key act as a user through the user_id query', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    await createRepo(api.request, 'alices', undefined, { key: aliceKey });
    const response = await api.request('GET', '/v1/repo/alices?user_id=alice');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ repo_name: 'alices', base_model: 'Qwen/Qwen3-32B' });
  });

  it('prefers the header when X-User-Id and user_id differ', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const bobKey = await createUserKey(api.request, 'bob');
    await createRepo(api.request, 'alice-repo', undefined, { key: aliceKey });
    await createRepo(api.request, 'bob-repo', undefined, { key: bobKey });

    const response = await api.request('GET', '/v1/repo?user_id=bob', { headers: { 'x-user-id': 'alice' } });
    expect(response.body).toEqual({ repos: ['alice-repo'] });
  });

  it('refuses an override with an invalid user name', async () => {
    const response = await api.request('GET', '/v1/repo', { headers: { 'x-user-id': 'a/b' } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, createUserKey, expectError, type TestApp } from '#test/support/app.ts';

const ADMIN_ONLY = 'This route requires a master API key';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
});
afterEach(() => api.close());

describe('POST /v1/admin/keys', () => {
  it('creates a key and shows its secret once', async () => {
    const response = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice', name: 'ci' } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      key_id: expect.stringMatching(/^key_[0-9a-f]{16}$/),
      user_id: 'alice',
      admin: false,
      name: 'ci',
      created_at: expect.any(String),
      api_key: expect.any(String),
    });
  });

  it('marks the answer Cache-Control: no-store, since it carries the secret', async () => {
    const response = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' } });
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('creates an admin key that may act for other users', async () => {
    const created = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'ops', admin: true } });
    expect(created.body.admin).toBe(true);
    const response = await api.request('GET', '/v1/repo', { key: created.body.api_key, headers: { 'x-user-id': 'alice' } });
    expect(response.status).toBe(200);
  });

  it('refuses a body without user_id with 422', async () => {
    const response = await api.request('POST', '/v1/admin/keys', { body: {} });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses an invalid user name with 422', async () => {
    const response = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'a/b' } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });

  it('refuses a non-admin key with 403', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('POST', '/v1/admin/keys', { key: aliceKey, body: { user_id: 'mallory', admin: true } });
    expectError(response, 403, 'FORBIDDEN', ADMIN_ONLY);
  });
});

describe('GET /v1/admin/keys', () => {
  it("lists a user's keys without their secrets", async () => {
    const first = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice', name: 'one' } });
    await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice', name: 'two' } });
    await api.request('POST', '/v1/admin/keys', { body: { user_id: 'bob' } });

    const response = await api.request('GET', '/v1/admin/keys?user_id=alice');
    expect(response.status).toBe(200);
    expect(response.body.keys).toHaveLength(2);
    expect(response.body.keys.map((key: { name: string }) => key.name).sort()).toEqual(['one', 'two']);
    expect(response.body.keys.map((key: { key_id: string }) => key.key_id)).toContain(first.body.key_id);
    expect(JSON.stringify(response.body)).not.toContain(first.body.api_key);
  });

  it('requires user_id', async () => {
    const response = await api.request('GET', '/v1/admin/keys');
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a non-admin key with 403', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', '/v1/admin/keys?user_id=alice', { key: aliceKey });
    expectError(response, 403, 'FORBIDDEN', ADMIN_ONLY);
  });
});

describe('DELETE /v1/admin/keys/{key_id}', () => {
  it('revokes a key', async () => {
    const created = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' } });
    const response = await api.request('DELETE', `/v1/admin/keys/${created.body.key_id}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'API key revoked' });
    expect((await api.request('GET', '/v1/admin/keys?user_id=alice')).body).toEqual({ keys: [] });
  });

  it('answers 404 for an unknown key id', async () => {
    const response = await api.request('DELETE', '/v1/admin/keys/key_0123456789abcdef');
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "API key 'key_0123456789abcdef' not found");
  });

  it('answers 422 for a malformed key id', async () => {
    const response = await api.request('DELETE', '/v1/admin/keys/nonsense');
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a non-admin key with 403, even for its own key', async () => {
    const created = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' } });
    const response = await api.request('DELETE', `/v1/admin/keys/${created.body.key_id}`, { key: created.body.api_key });
    expectError(response, 403, 'FORBIDDEN', ADMIN_ONLY);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashApiKey } from '#core/api-keys.ts';
import { ADMIN_KEY, createPrompt, createRepo, createTestApp, createUserKey, expectError, type TestApp } from '#test/support/app.ts';

const PROMPT = '/v1/repo/r1/prompts/p1';
const retryKey = (id: string) => ({ 'idempotency-key': `stainless-python-retry-${id}` });

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await createRepo(api.request, 'r1');
  await createPrompt(api.request, 'r1', 'p1');
});
afterEach(() => api.close());

describe('Idempotency-Key', () => {
  it('replays the original 200 for a retried DELETE instead of a 404', async () => {
    const first = await api.request('DELETE', PROMPT, { headers: retryKey('a') });
    expect(first.status).toBe(200);

    const retry = await api.request('DELETE', PROMPT, { headers: retryKey('a') });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ message: 'Prompt deleted successfully' });
    expect(retry.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('runs the handler again for a different key', async () => {
    await api.request('DELETE', PROMPT, { headers: retryKey('a') });
    const response = await api.request('DELETE', PROMPT, { headers: retryKey('b') });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Prompt 'p1' not found");
  });

  it('runs the handler again without a key', async () => {
    await api.request('DELETE', PROMPT, { headers: retryKey('a') });
    expectError(await api.request('DELETE', PROMPT), 404, 'RESOURCE_NOT_FOUND', "Prompt 'p1' not found");
  });

  it('refuses the same key with a different body with 422', async () => {
    await api.request('POST', '/v1/repo', { body: { repo_name: 'r2' }, headers: retryKey('c') });
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r3' }, headers: retryKey('c') });
    expectError(response, 422, 'VALIDATION_ERROR', 'Idempotency-Key reused with a different request');
    expect(response.body).toEqual({ message: 'Idempotency-Key reused with a different request', code: 'VALIDATION_ERROR' });
    expect((await api.request('GET', '/v1/repo')).body).toEqual({ repos: ['r1', 'r2'] });
  });

  it('replays the original 201 for a retried create', async () => {
    const first = await api.request('POST', '/v1/repo', { body: { repo_name: 'r2' }, headers: retryKey('d') });
    const retry = await api.request('POST', '/v1/repo', { body: { repo_name: 'r2' }, headers: retryKey('d') });
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(retry.body).toEqual(first.body);
  });

  it('replays a stored error with its x-should-retry header', async () => {
    const first = await api.request('POST', '/v1/repo/r1/prompts', { body: { prompt_name: 'p1', messages: [] }, headers: retryKey('e') });
    expectError(first, 409, 'RESOURCE_CONFLICT');
    const retry = await api.request('POST', '/v1/repo/r1/prompts', { body: { prompt_name: 'p1', messages: [] }, headers: retryKey('e') });
    expectError(retry, 409, 'RESOURCE_CONFLICT', first.body.message);
  });

  it('keeps the same key on different paths apart', async () => {
    await createPrompt(api.request, 'r1', 'p2');
    await api.request('DELETE', PROMPT, { headers: retryKey('f') });
    const other = await api.request('DELETE', '/v1/repo/r1/prompts/p2', { headers: retryKey('f') });
    expect(other.status).toBe(200);
    expectError(await api.request('GET', '/v1/repo/r1/prompts/p2'), 404, 'RESOURCE_NOT_FOUND');
  });

  it("keeps different callers' keys apart", async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    await api.request('POST', '/v1/repo', { body: { repo_name: 'shared' }, headers: retryKey('g') });
    const alice = await api.request('POST', '/v1/repo', { key: aliceKey, body: { repo_name: 'shared' }, headers: retryKey('g') });
    expect(alice.status).toBe(201);
    expect((await api.request('GET', '/v1/repo', { key: aliceKey })).body).toEqual({ repos: ['shared'] });
  });

  it('ignores the key on GET', async () => {
    await api.request('GET', '/v1/repo', { headers: retryKey('h') });
    await createRepo(api.request, 'r2');
    const response = await api.request('GET', '/v1/repo', { headers: retryKey('h') });
    expect(response.body).toEqual({ repos: ['r1', 'r2'] });
  });

  it('answers a retryable 409 while the first request with the key is still running', async () => {
    const key = retryKey('busy')['idempotency-key'];
    await api.services.idempotency.claim({ caller: hashApiKey(ADMIN_KEY), method: 'DELETE', path: PROMPT, key, body: '' });

    const response = await api.request('DELETE', PROMPT, { headers: retryKey('busy') });
    expect(response.status).toBe(409);
    expect(response.body.code).toBe('RESOURCE_CONFLICT');
    expect(response.headers.get('x-should-retry')).toBe('true');
    expect((await api.request('GET', PROMPT)).status).toBe(200);
  });

  it('does not store the answer that carries a new API key, so no secret is kept', async () => {
    const first = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' }, headers: retryKey('i') });
    const second = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' }, headers: retryKey('i') });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.body.key_id).not.toBe(first.body.key_id);
  });
});

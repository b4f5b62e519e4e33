import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { hashApiKey } from '#core/api-keys.ts';
import { BusyError } from '#core/errors.ts';
import { IDEMPOTENCY_LEASE_MS, IdempotencyService, type Claim, type IdempotentRequest, type StoredResponse } from '#core/idempotency.ts';
import type { Clock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { ADMIN_KEY, createPrompt, createRepo, createTestApp, createUserKey, expectError, type TestApp } from '#test/support/app.ts';

const PROMPT = '/v1/repo/r1/prompts/p1';
const retryKey = (id: string) => ({ 'idempotency-key': `stainless-python-retry-${id}` });

describe('Idempotency-Key', () => {
  let api: TestApp;
  beforeEach(async () => {
    api = await createTestApp();
    await createRepo(api.request, 'r1');
    await createPrompt(api.request, 'r1', 'p1');
  });
  afterEach(() => api.close());

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

  it('runs a retry once the lease of a request lost with its server has passed', async () => {
    const key = retryKey('crash')['idempotency-key'];
    // Claimed and never released: the server died mid-request.
    await api.services.idempotency.claim({ caller: hashApiKey(ADMIN_KEY), method: 'DELETE', path: PROMPT, key, body: '' });
    expect((await api.request('DELETE', PROMPT, { headers: retryKey('crash') })).status).toBe(409);

    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + IDEMPOTENCY_LEASE_MS + 1_000);
      const retry = await api.request('DELETE', PROMPT, { headers: retryKey('crash') });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual({ message: 'Prompt deleted successfully' });
      expectError(await api.request('GET', PROMPT), 404, 'RESOURCE_NOT_FOUND');
      expect((await api.request('DELETE', PROMPT, { headers: retryKey('crash') })).status).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not store the answer that carries a new API key, so no secret is kept', async () => {
    const first = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' }, headers: retryKey('i') });
    const second = await api.request('POST', '/v1/admin/keys', { body: { user_id: 'alice' }, headers: retryKey('i') });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.body.key_id).not.toBe(first.body.key_id);
  });
});

const LEASE_MS = 60_000;
const answer = (body: string): StoredResponse => ({ status: 200, body, headers: { 'content-type': 'application/json' } });
const claimed = (claim: Claim) => {
  expect(claim.kind).toBe('claimed');
  return claim as Extract<Claim, { kind: 'claimed' }>;
};

/** A clock the test moves by hand, starting now (the Store's ttl runs on real time). */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = Date.now();
  return { now: () => new Date(now), advance: (ms) => (now += ms) };
}

describe.each([
  ['SQLite', async (): Promise<Store> => new SqliteStore(':memory:')],
  ['DynamoDB Local', createDynamoTestStore],
])('Idempotency-Key claims on %s', (_name, makeStore) => {
  let store: Store;
  let clock: ReturnType<typeof manualClock>;
  let service: IdempotencyService;
  let request: IdempotentRequest;
  beforeAll(async () => {
    store = await makeStore();
  });
  afterAll(() => store?.close());
  beforeEach(() => {
    clock = manualClock();
    service = new IdempotencyService(store, clock, { leaseMs: LEASE_MS });
    request = { caller: 'caller', method: 'DELETE', path: '/v1/repo/r1', key: `stainless-node-retry-${randomUUID()}`, body: '' };
  });

  it('answers busy while the lease of the request holding the key runs', async () => {
    claimed(await service.claim(request));
    clock.advance(LEASE_MS - 1);
    await expect(service.claim(request)).rejects.toBeInstanceOf(BusyError);
  });

  it('lets a retry run once the lease of a request that never released its claim has passed', async () => {
    claimed(await service.claim(request));
    clock.advance(LEASE_MS + 1);
    const retry = claimed(await service.claim(request));
    await expect(service.claim(request)).rejects.toBeInstanceOf(BusyError);
    await retry.release(answer('"retried"'));
    expect(await service.claim(request)).toEqual({ kind: 'replay', response: answer('"retried"') });
  });

  it('gives a lapsed claim to exactly one of several racing retries', async () => {
    claimed(await service.claim(request));
    clock.advance(LEASE_MS + 1);
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => service.claim(request)));
    expect(results.filter((result) => result.status === 'fulfilled').map((result) => result.value.kind)).toEqual(['claimed']);
    for (const result of results) if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(BusyError);
  });

  it('keeps the answer of the retry that took over, not the late one of the request it replaced', async () => {
    const stalled = claimed(await service.claim(request));
    clock.advance(LEASE_MS + 1);
    const retry = claimed(await service.claim(request));
    await retry.release(answer('"retry"'));
    await stalled.release(answer('"stalled"'));
    await stalled.release();
    expect(await service.claim(request)).toEqual({ kind: 'replay', response: answer('"retry"') });
  });

  it('replays a completed answer long after the lease', async () => {
    await claimed(await service.claim(request)).release(answer('"done"'));
    clock.advance(23 * 60 * 60 * 1000);
    expect(await service.claim(request)).toEqual({ kind: 'replay', response: answer('"done"') });
  });

  it('frees the key at once when the request releases its claim without an answer', async () => {
    await claimed(await service.claim(request)).release();
    claimed(await service.claim(request));
  });
});

describe('Idempotency-Key claim renewal', () => {
  afterEach(() => vi.useRealTimers());

  it('renews the claim of a request that is still running, so it stays busy past the lease', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const store = new SqliteStore(':memory:');
    const clock = manualClock();
    const service = new IdempotencyService(store, clock, { leaseMs: LEASE_MS });
    const request: IdempotentRequest = { caller: 'c', method: 'POST', path: '/v1/chat/completions', key: 'k', body: '{}' };
    const running = claimed(await service.claim(request));
    for (let step = 0; step < 9; step++) {
      clock.advance(LEASE_MS / 3);
      await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    }
    await expect(service.claim(request)).rejects.toBeInstanceOf(BusyError);

    await running.release(answer('"reply"'));
    clock.advance(10 * LEASE_MS);
    await vi.advanceTimersByTimeAsync(10 * LEASE_MS);
    expect(await service.claim(request)).toEqual({ kind: 'replay', response: answer('"reply"') });
    await store.close();
  });
});

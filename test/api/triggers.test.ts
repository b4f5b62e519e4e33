/**
 * Inbound triggers (DESIGN.md §7a): their management, and signed hooks that start a job as the
 * trigger's owner. Requests are signed with the `standardwebhooks` library itself and, for
 * GitHub, with node:crypto's HMAC; every refused request is checked to have started nothing.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keys } from '#core/keys.ts';
import { CLAIM_LEASE_MS } from '#core/triggers/seen-deliveries.ts';
import { createBake, createTarget, createTestApp, createUserKey, expectError, POLL, seedTarget, waitForJob, type ApiResponse, type TestApp } from '#test/support/app.ts';

const T1 = '/v1/repo/r1/targets/t1';
const STIM_ACTION = { type: 'stim', repo: 'r1', target: 't1' };

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

async function createTrigger(action: unknown = STIM_ACTION, key?: string) {
  const response = await api.request('POST', '/v1/triggers', { body: { action, description: 'on push' }, ...(key ? { key } : {}) });
  expect(response.status, response.text).toBe(201);
  return response.body as { id: string; url: string; secret: string };
}

/** Standard Webhooks headers for `body`, signed at `at` (now unless given). */
function standardHeaders(secret: string, body: string, { id = `msg_${randomUUID()}`, at = new Date() } = {}) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, body),
  };
}

/** GitHub's headers for `body`: the hex HMAC-SHA256 keyed with the whole secret string. */
function gitHubHeaders(secret: string, body: string | Buffer, { delivery = randomUUID(), event = 'push' } = {}) {
  return {
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    'x-github-delivery': delivery,
    'x-github-event': event,
  };
}

/** Posts to a hook as an outside system does: no API key, the body exactly as given. */
async function hook(triggerId: string, body: string | Uint8Array, headers: Record<string, string>): Promise<ApiResponse> {
  const response = await api.app.request(`/v1/hooks/${triggerId}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : text, text };
}

const PUSH = JSON.stringify({ ref: 'refs/heads/main', after: 'abc123' });

/** Counts job starts of every kind, whichever route or hook asks for them. */
function countStarts() {
  return {
    target: vi.spyOn(api.services.targetJobs, 'start'),
    bake: vi.spyOn(api.services.bakeJobs, 'start'),
  };
}

describe('trigger management', () => {
  it('creates a trigger with its hook URL and a secret shown only at creation', async () => {
    const response = await api.request('POST', '/v1/triggers', { body: { action: STIM_ACTION, description: 'on push' } });
    expect(response.status, response.text).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { id, secret } = response.body;
    expect(id).toMatch(/^trg_[0-9a-f]{32}$/);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const shown = { id, url: `http://localhost/v1/hooks/${id}`, action: STIM_ACTION, description: 'on push', created_at: expect.any(String) };
    expect(response.body).toEqual({ ...shown, secret });

    const got = await api.request('GET', `/v1/triggers/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(shown);
    const list = await api.request('GET', '/v1/triggers');
    expect(list.body).toEqual({ triggers: [shown] });
    expect(list.text).not.toContain(secret.slice(6));
  });

  it('deletes a trigger, whose hook then refuses even a correctly signed request', async () => {
    const { id, secret } = await createTrigger();
    expect((await api.request('DELETE', `/v1/triggers/${id}`)).status).toBe(200);
    expectError(await api.request('GET', `/v1/triggers/${id}`), 404, 'RESOURCE_NOT_FOUND', `Trigger '${id}' not found`);
    expectError(await api.request('DELETE', `/v1/triggers/${id}`), 404, 'RESOURCE_NOT_FOUND');
    expect((await api.request('GET', '/v1/triggers')).body).toEqual({ triggers: [] });

    const starts = countStarts();
    expectError(await hook(id, PUSH, standardHeaders(secret, PUSH)), 401, 'UNAUTHORIZED');
    expect(starts.target).not.toHaveBeenCalled();
  });

  it.each([
    ['an unknown repo', { type: 'stim', repo: 'nope', target: 't1' }, "Repository 'nope' not found"],
    ['an unknown target', { type: 'rollout', repo: 'r1', target: 'nope' }, "Target 'nope' not found"],
    ['an unknown bake', { type: 'bake', repo: 'r1', bake: 'nope' }, "Bake 'nope' not found"],
    ['an unknown bake for a pipeline', { type: 'pipeline', repo: 'r1', bake: 'nope' }, "Bake 'nope' not found"],
  ])('refuses an action naming %s with 404', async (_, action, message) => {
    expectError(await api.request('POST', '/v1/triggers', { body: { action } }), 404, 'RESOURCE_NOT_FOUND', message);
  });

  it.each([
    ['an unknown action type', { type: 'deploy', repo: 'r1', target: 't1' }],
    ['a stim action without its target', { type: 'stim', repo: 'r1', bake: 'b1' }],
    ['an invalid name', { type: 'bake', repo: 'r1', bake: 'no/slash' }],
  ])('refuses %s with 422', async (_, action) => {
    expectError(await api.request('POST', '/v1/triggers', { body: { action } }), 422, 'VALIDATION_ERROR');
  });

  it("keeps each user's triggers to themselves", async () => {
    const alice = await createUserKey(api.request, 'alice');
    const bob = await createUserKey(api.request, 'bob');
    await createRepoAs(alice);
    const { id } = await createTrigger(STIM_ACTION, alice);

    expectError(await api.request('GET', `/v1/triggers/${id}`, { key: bob }), 404, 'RESOURCE_NOT_FOUND');
    expectError(await api.request('DELETE', `/v1/triggers/${id}`, { key: bob }), 404, 'RESOURCE_NOT_FOUND');
    expect((await api.request('GET', '/v1/triggers', { key: bob })).body).toEqual({ triggers: [] });
    expect((await api.request('GET', '/v1/triggers', { key: alice })).body.triggers).toHaveLength(1);
    // Bob cannot name Alice's target: it does not exist in his space.
    expectError(await api.request('POST', '/v1/triggers', { key: bob, body: { action: STIM_ACTION } }), 404, 'RESOURCE_NOT_FOUND');
  });

  it('needs an API key', async () => {
    expectError(await api.request('GET', '/v1/triggers', { key: null }), 401, 'UNAUTHORIZED');
  });
});

/** Seeds repo r1 with target t1 in the key's own space. */
async function createRepoAs(key: string) {
  const as = (method: string, path: string, options: Parameters<typeof api.request>[2] = {}) => api.request(method, path, { ...options, key });
  await seedTarget(as, 'r1');
}

describe('Standard Webhooks hooks', () => {
  it("starts the action as the trigger's owner and answers 202 with what started", async () => {
    const alice = await createUserKey(api.request, 'alice');
    await createRepoAs(alice);
    const { id, secret } = await createTrigger(STIM_ACTION, alice);
    const starts = countStarts();

    const response = await hook(id, PUSH, standardHeaders(secret, PUSH));
    expect(response.status, response.text).toBe(202);
    expect(response.body).toEqual({
      trigger_id: id,
      action: STIM_ACTION,
      started: { kind: 'stim', repo: 'r1', name: 't1', status: expect.any(String), job_id: expect.any(Number) },
    });
    expect(starts.target).toHaveBeenCalledExactlyOnceWith({ userId: 'alice', isAdmin: false }, 'r1', 't1', 'stim');
    const stim = await api.request('GET', `${T1}/stim`, { key: alice });
    expect(stim.body.job_id).toBe(response.body.started.job_id);
    // The admin's own r1/t1 was left alone.
    expect((await api.request('GET', `${T1}/stim`)).body.status).toBe('not_started');
  });

  it.each([
    ['no signature headers at all', () => ({})],
    ['webhook-signature missing', (secret: string) => ({ ...standardHeaders(secret, PUSH), 'webhook-signature': '' })],
    ['webhook-id missing', (secret: string) => omit(standardHeaders(secret, PUSH), 'webhook-id')],
    ['webhook-timestamp missing', (secret: string) => omit(standardHeaders(secret, PUSH), 'webhook-timestamp')],
    ['a signature made with another secret', () => standardHeaders(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, PUSH)],
    ['a timestamp 6 minutes old', (secret: string) => standardHeaders(secret, PUSH, { at: new Date(Date.now() - 6 * 60_000) })],
    ['a timestamp 6 minutes ahead', (secret: string) => standardHeaders(secret, PUSH, { at: new Date(Date.now() + 6 * 60_000) })],
    ['a body altered after signing', (secret: string) => standardHeaders(secret, PUSH.replace('main', 'evil'))],
    ['an id altered after signing', (secret: string) => ({ ...standardHeaders(secret, PUSH), 'webhook-id': 'msg_other' })],
  ])('refuses %s with 401 and starts nothing', async (_, headers) => {
    const { id, secret } = await createTrigger();
    const starts = countStarts();
    const response = await hook(id, PUSH, headers(secret));
    expectError(response, 401, 'UNAUTHORIZED');
    expect(starts.target).not.toHaveBeenCalled();
    expect((await api.request('GET', `${T1}/stim`)).body.status).toBe('not_started');
  });

  it('says why a timestamp is refused', async () => {
    const { id, secret } = await createTrigger();
    const response = await hook(id, PUSH, standardHeaders(secret, PUSH, { at: new Date(Date.now() - 10 * 60_000) }));
    expectError(response, 401, 'UNAUTHORIZED', /more than 5 minutes away/);
  });

  it('accepts a timestamp 4 minutes old', async () => {
    const { id, secret } = await createTrigger();
    expect((await hook(id, PUSH, standardHeaders(secret, PUSH, { at: new Date(Date.now() - 4 * 60_000) }))).status).toBe(202);
  });

  it('refuses a replayed webhook-id with 409 and starts nothing the second time', async () => {
    const { id, secret } = await createTrigger();
    const headers = standardHeaders(secret, PUSH);
    expect((await hook(id, PUSH, headers)).status).toBe(202);
    const starts = countStarts();
    expectError(await hook(id, PUSH, headers), 409, 'RESOURCE_CONFLICT', /already received/);
    expect(starts.target).not.toHaveBeenCalled();
  });

  it('refuses an unknown trigger exactly like a wrong signature', async () => {
    const { id } = await createTrigger();
    const other = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
    const unknown = await hook('trg_00000000000000000000000000000000', PUSH, standardHeaders(other, PUSH));
    const wrong = await hook(id, PUSH, standardHeaders(other, PUSH));
    expectError(unknown, 401, 'UNAUTHORIZED');
    expect(unknown.body).toEqual(wrong.body);
  });

  it("answers a start refused by the job's prerequisites with its own 400, and keeps the id usable", async () => {
    const { id, secret } = await createTrigger({ type: 'rollout', repo: 'r1', target: 't1' });
    const headers = standardHeaders(secret, PUSH);
    expectError(await hook(id, PUSH, headers), 400, 'INVALID_INPUT', /stim/i);
    expect((await api.request('GET', `${T1}/rollout`)).body.status).toBe('not_started');

    await api.request('POST', `${T1}/stim`);
    expect((await waitForJob(api.request, `${T1}/stim`)).body.status).toBe('complete');
    const redelivered = await hook(id, PUSH, headers);
    expect(redelivered.status, redelivered.text).toBe(202);
    expect(redelivered.body.started).toMatchObject({ kind: 'rollout', name: 't1', job_id: expect.any(Number) });
    expectError(await hook(id, PUSH, headers), 409, 'RESOURCE_CONFLICT');
  });

  it('starts a bake', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const { id, secret } = await createTrigger({ type: 'bake', repo: 'r1', bake: 'b1' });
    const starts = countStarts();
    // Its target has no rollout yet: the bake's own prerequisite error, and nothing started.
    expectError(await hook(id, PUSH, standardHeaders(secret, PUSH)), 400, 'INVALID_INPUT');
    expect((await api.request('GET', '/v1/repo/r1/bakes/b1')).body.status).toBe('not_started');
    for (const kind of ['stim', 'rollout']) {
      await api.request('POST', `${T1}/${kind}`);
      expect((await waitForJob(api.request, `${T1}/${kind}`)).body.status).toBe('complete');
    }
    const response = await hook(id, PUSH, standardHeaders(secret, PUSH));
    expect(response.status, response.text).toBe(202);
    expect(response.body.started).toEqual({ kind: 'bake', repo: 'r1', name: 'b1', status: expect.any(String), job_id: expect.any(Number) });
    expect(starts.bake).toHaveBeenCalledTimes(2);
    expect((await api.request('GET', '/v1/repo/r1/bakes/b1')).body.job_id).toBe(response.body.started.job_id);
  });

  it('answers 404 once the target it names is deleted, and keeps the id usable', async () => {
    const { id, secret } = await createTrigger();
    expect((await api.request('DELETE', T1)).status).toBe(200);
    const headers = standardHeaders(secret, PUSH);
    expectError(await hook(id, PUSH, headers), 404, 'RESOURCE_NOT_FOUND', "Target 't1' not found");
    await createTarget(api.request, 'r1', 't1');
    expect((await hook(id, PUSH, headers)).status).toBe(202);
  });

  it('does not ask for an API key, and ignores one', async () => {
    const { id, secret } = await createTrigger();
    const response = await hook(id, PUSH, { ...standardHeaders(secret, PUSH), authorization: 'Bearer bh_not_a_key' });
    expect(response.status, response.text).toBe(202);
  });
});

describe('GitHub hooks', () => {
  it('starts the action on a valid X-Hub-Signature-256', async () => {
    const { id, secret } = await createTrigger();
    const response = await hook(id, PUSH, gitHubHeaders(secret, PUSH));
    expect(response.status, response.text).toBe(202);
    expect(response.body.started).toMatchObject({ kind: 'stim', repo: 'r1', name: 't1', job_id: expect.any(Number) });
  });

  it.each([
    ['a signature made with another secret', () => gitHubHeaders('whsec_other', PUSH)],
    ['a body altered after signing', (secret: string) => gitHubHeaders(secret, PUSH.replace('main', 'evil'))],
    ['a malformed signature', (secret: string) => ({ ...gitHubHeaders(secret, PUSH), 'x-hub-signature-256': 'sha1=abc' })],
    ['no X-GitHub-Delivery', (secret: string) => omit(gitHubHeaders(secret, PUSH), 'x-github-delivery')],
  ])('refuses %s with 401 and starts nothing', async (_, headers) => {
    const { id, secret } = await createTrigger();
    const starts = countStarts();
    expectError(await hook(id, PUSH, headers(secret)), 401, 'UNAUTHORIZED');
    expect(starts.target).not.toHaveBeenCalled();
  });

  it('refuses a replayed delivery id with 409 and starts nothing the second time', async () => {
    const { id, secret } = await createTrigger();
    const headers = gitHubHeaders(secret, PUSH);
    expect((await hook(id, PUSH, headers)).status).toBe(202);
    const starts = countStarts();
    expectError(await hook(id, PUSH, headers), 409, 'RESOURCE_CONFLICT');
    expect(starts.target).not.toHaveBeenCalled();
  });

  it('answers a ping with 200 and starts nothing', async () => {
    const { id, secret } = await createTrigger();
    const starts = countStarts();
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    const response = await hook(id, body, gitHubHeaders(secret, body, { event: 'ping' }));
    expect(response.status, response.text).toBe(200);
    expect(response.body).toEqual({ trigger_id: id, message: 'Ping received; the trigger is ready.' });
    expect(starts.target).not.toHaveBeenCalled();
    // A forged ping is refused like any other request.
    expectError(await hook(id, body, gitHubHeaders('whsec_other', body, { event: 'ping' })), 401, 'UNAUTHORIZED');
  });

  it('verifies the exact bytes received, not their text', async () => {
    const { id, secret } = await createTrigger();
    // Not valid UTF-8: decoding and re-encoding would change these bytes.
    const bytes = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    const response = await hook(id, bytes, gitHubHeaders(secret, bytes));
    expect(response.status, response.text).toBe(202);
    // An empty JSON body is verified as empty, not as the `{}` the API reads it as.
    const empty = await hook(id, '', gitHubHeaders(secret, ''));
    expect(empty.status, empty.text).toBe(202);
  });
});

describe('a delivery whose server died while starting it', () => {
  /** Leaves the claim a request holds while it starts its action, as a crash would leave it. */
  async function leaveClaim(triggerId: string, deliveryId: string, leaseUntil: number) {
    const now = Math.floor(Date.now() / 1000);
    await api.store.put({ ...keys.triggerDelivery(triggerId, 'standard', deliveryId), state: 'starting', claimId: 'dead', leaseUntil, ttl: now + 900 });
  }

  it('is started by the redelivery once the claim has lapsed', async () => {
    const { id, secret } = await createTrigger();
    await leaveClaim(id, 'msg_crashed', Date.now() - 1);
    const response = await hook(id, PUSH, standardHeaders(secret, PUSH, { id: 'msg_crashed' }));
    expect(response.status, response.text).toBe(202);
    expectError(await hook(id, PUSH, standardHeaders(secret, PUSH, { id: 'msg_crashed' })), 409, 'RESOURCE_CONFLICT', /already received/);
  });

  it('answers a retryable 409 while another request holds the claim, starting nothing', async () => {
    const { id, secret } = await createTrigger();
    await leaveClaim(id, 'msg_racing', Date.now() + CLAIM_LEASE_MS);
    const starts = countStarts();
    const response = await hook(id, PUSH, standardHeaders(secret, PUSH, { id: 'msg_racing' }));
    expect({ status: response.status, code: response.body.code }).toEqual({ status: 409, code: 'RESOURCE_CONFLICT' });
    expect(response.headers.get('x-should-retry')).toBe('true');
    expect(starts.target).not.toHaveBeenCalled();
  });

  it('lets only one of two copies sent at once start the action', async () => {
    const { id, secret } = await createTrigger();
    const starts = countStarts();
    const headers = standardHeaders(secret, PUSH);
    const statuses = (await Promise.all([hook(id, PUSH, headers), hook(id, PUSH, headers)])).map((response) => response.status);
    expect(statuses.sort()).toEqual([202, 409]);
    expect(starts.target).toHaveBeenCalledOnce();
  });
});

describe('pipeline triggers', () => {
  it('a GitHub-signed push starts the bake\'s pipeline, which runs to the finished bake', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const { id, secret } = await createTrigger({ type: 'pipeline', repo: 'r1', bake: 'b1' });
    const response = await hook(id, PUSH, gitHubHeaders(secret, PUSH));
    expect(response.status, response.text).toBe(202);
    expect(response.body).toEqual({
      trigger_id: id,
      action: { type: 'pipeline', repo: 'r1', bake: 'b1' },
      started: { kind: 'pipeline', repo: 'r1', name: 'b1', status: 'running', job_id: null },
    });
    const done = await vi.waitFor(async () => {
      const pipeline = await api.request('GET', '/v1/repo/r1/bakes/b1/pipeline');
      expect(pipeline.body.status, pipeline.text).toBe('complete');
      return pipeline.body;
    }, POLL);
    expect(done.steps.map((step: { kind: string; name: string }) => `${step.kind} ${step.name}`)).toEqual(['stim t1', 'rollout t1', 'bake b1']);
    expect((await api.request('GET', '/v1/repo/r1/bakes/b1')).body.status).toBe('complete');
  });

  it('refuses a replayed GitHub delivery without touching the pipeline', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const { id, secret } = await createTrigger({ type: 'pipeline', repo: 'r1', bake: 'b1' });
    const headers = gitHubHeaders(secret, PUSH);
    expect((await hook(id, PUSH, headers)).status).toBe(202);
    const runs = vi.spyOn(api.services.pipelines, 'run');
    expectError(await hook(id, PUSH, headers), 409, 'RESOURCE_CONFLICT');
    expect(runs).not.toHaveBeenCalled();
  });
});

describe('hook body size', () => {
  it("refuses a body over the app's limit with 413 and starts nothing", async () => {
    await api.close();
    api = await createTestApp({ maxBodyBytes: 1024 });
    await seedTarget(api.request, 'r1');
    const { id, secret } = await createTrigger();
    const starts = countStarts();
    const big = JSON.stringify({ padding: 'x'.repeat(2048) });
    expectError(await hook(id, big, standardHeaders(secret, big)), 413, 'PAYLOAD_TOO_LARGE');
    expect(starts.target).not.toHaveBeenCalled();
  });
});

function omit(headers: Record<string, string>, name: string): Record<string, string> {
  const { [name]: _, ...rest } = headers;
  return rest;
}

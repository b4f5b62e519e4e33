/**
 * The Tinker REST routes that manage a checkpoint (loops-api.md §2.6): publish and unpublish
 * (`POST`/`DELETE …/checkpoints/{checkpoint_id}/publish`), its time to live (`PUT …/ttl`, and
 * `ttl_seconds` on saves), what another user can do with a public checkpoint, and the 400s and
 * 404s a client can act on.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TTL_SECONDS_MAX } from '#schemas/tinker.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';
import { createModel, TinkerClient } from './tinker-support.ts';

const MODEL = 'bakehouse/toy-instruct';

let api: TestApp;
let alice: TinkerClient;
let bob: TinkerClient;

beforeEach(async () => {
  api = await createTestApp({ services: { training: { pollMs: 5 } }, tinker: { pollHoldMs: 50 } });
  alice = new TinkerClient(api, await createUserKey(api.request, 'alice'));
  bob = new TinkerClient(api, await createUserKey(api.request, 'bob'));
});
afterEach(() => api.close());

/** A model of alice's with a `weights/state` and a `sampler_weights/final` checkpoint. */
async function savedModel() {
  const { modelId, runId, trainer } = await createModel(api, alice, 'alice');
  for (const [route, path, seq] of [
    ['save_weights', 'state', 1],
    ['save_weights_for_sampler', 'final', 2],
  ] as const) {
    const submitted = await alice.ok(route, { model_id: modelId, path, seq_id: seq });
    await trainer.answerSave(await trainer.take());
    await alice.settled(submitted.request_id);
  }
  return { modelId, runId, trainer, state: `tinker://${modelId}/weights/state`, final: `tinker://${modelId}/sampler_weights/final` };
}

/** The run's trainer, ready, its init answered. */
async function readyTrainer(runId: string) {
  const trainer = await FakeTrainer.readyForRun(api, runId);
  const init = await trainer.take();
  await trainer.post(init.id, { status: 'done', result: { step: 0, lora_rank: 8 } });
  return trainer;
}

const checkpointRoute = (modelId: string, checkpointId: string, action = '') => `training_runs/${modelId}/checkpoints/${checkpointId}${action ? `/${action}` : ''}`;
const publish = (client: TinkerClient, modelId: string, checkpointId: string) => client.call(checkpointRoute(modelId, checkpointId, 'publish'), {}, {}, 'POST');
const unpublish = (client: TinkerClient, modelId: string, checkpointId: string) => client.call(checkpointRoute(modelId, checkpointId, 'publish'), undefined, {}, 'DELETE');
const setTtl = (client: TinkerClient, modelId: string, checkpointId: string, body: unknown) => client.call(checkpointRoute(modelId, checkpointId, 'ttl'), body, {}, 'PUT');

function expectTinkerError(response: ApiResponse, status: number, message: RegExp) {
  expect(response.status, response.text).toBe(status);
  expect(response.body.message).toMatch(message);
  expect(response.headers.get('x-should-retry')).toBe('false');
}

async function listed(client: TinkerClient, modelId: string) {
  return (await client.ok(`training_runs/${modelId}/checkpoints`)).checkpoints as { checkpoint_id: string; public: boolean; expires_at: string | null }[];
}

describe('publish and unpublish', () => {
  it('makes a checkpoint public and private again, shown in every Tinker listing; asking twice changes nothing', async () => {
    const { modelId } = await savedModel();
    expect((await publish(alice, modelId, 'sampler_weights/final')).status).toBe(204);
    expect(await listed(alice, modelId)).toEqual([expect.objectContaining({ checkpoint_id: 'weights/state', public: false }), expect.objectContaining({ checkpoint_id: 'sampler_weights/final', public: true })]);
    expect((await alice.ok('checkpoints')).checkpoints).toContainEqual(expect.objectContaining({ checkpoint_id: 'sampler_weights/final', public: true }));
    expect(await alice.ok(`training_runs/${modelId}`)).toMatchObject({ last_checkpoint: { public: false }, last_sampler_checkpoint: { public: true } });
    // The SDK retries a 409 for minutes, so a repeat succeeds.
    expect((await publish(alice, modelId, 'sampler_weights/final')).status).toBe(204);
    expect((await listed(alice, modelId)).map((checkpoint) => checkpoint.public)).toEqual([false, true]);

    expect((await unpublish(alice, modelId, 'sampler_weights/final')).status).toBe(204);
    expect((await listed(alice, modelId)).map((checkpoint) => checkpoint.public)).toEqual([false, false]);
    expect((await unpublish(alice, modelId, 'sampler_weights/final')).status).toBe(204);
    expect((await listed(alice, modelId)).map((checkpoint) => checkpoint.public)).toEqual([false, false]);
  });

  it('answers 404 for an unknown run, an unknown checkpoint or directory, and another user’s checkpoint, public or not', async () => {
    const { modelId } = await savedModel();
    for (const [client, model, checkpointId] of [
      [alice, 'nosuch:train:0', 'weights/state'],
      [alice, modelId, 'weights/nosuch'],
      [alice, modelId, 'external_weights/state'],
      [bob, modelId, 'weights/state'],
    ] as const) {
      expectTinkerError(await publish(client, model, checkpointId), 404, /not found/);
      expectTinkerError(await unpublish(client, model, checkpointId), 404, /not found/);
      expectTinkerError(await setTtl(client, model, checkpointId, { ttl_seconds: 7200 }), 404, /not found/);
    }
    expect((await publish(alice, modelId, 'weights/state')).status).toBe(204);
    // Public weights are readable by bob; managing them stays alice's.
    expectTinkerError(await unpublish(bob, modelId, 'weights/state'), 404, /not found/);
    expectTinkerError(await setTtl(bob, modelId, 'weights/state', { ttl_seconds: 7200 }), 404, /not found/);
    expectTinkerError(await bob.call(checkpointRoute(modelId, 'weights/state'), undefined, {}, 'DELETE'), 404, /not found/);
    expectTinkerError(await bob.call(checkpointRoute(modelId, 'weights/state', 'archive')), 404, /not found/);
  });
});

describe('a public checkpoint, seen by another user', () => {
  it('is described, sampled and trained from by its tinker:// path, and listed with access_scope=accessible, until it is unpublished', async () => {
    const { modelId, runId, state, final } = await savedModel();
    expectTinkerError(await bob.call('weights_info', { tinker_path: state }), 404, /not found/);
    await publish(alice, modelId, 'weights/state');
    await publish(alice, modelId, 'sampler_weights/final');

    expect(await bob.ok('weights_info', { tinker_path: state })).toMatchObject({ base_model: MODEL, is_lora: true, lora_rank: 8 });
    const sessionId = await bob.createSession();
    const sampling = await bob.ok('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, model_path: final });
    expect(await bob.ok(`samplers/${sampling.sampling_session_id}`)).toEqual({ sampler_id: sampling.sampling_session_id, base_model: MODEL, model_path: final });
    // create_training_client_from_state (0.38): bob's own model, loading alice's weights.
    const created = await bob.ok('load_weights', { session_id: sessionId, model_seq_id: 0, path: state, optimizer: false, type: 'load_weights' });
    expect(created.model_id).toBe(`${sessionId}:train:0`);
    const bobsRun = (await api.services.training.runs.findByAlias({ userId: 'bob', isAdmin: false }, created.model_id))!;
    expect(bobsRun).toMatchObject({ userId: 'bob', fromPath: state, baseModel: MODEL, loraRank: 8 });
    const trainer = await readyTrainer(bobsRun.id);
    expect((await trainer.take()).operation).toMatchObject({ kind: 'load', uri: expect.stringContaining(`/training/runs/${runId}/checkpoints/trainer/state/`) });

    // Listed only when asked for, with its public checkpoints alone.
    const owned = await bob.ok('training_runs');
    expect(owned.training_runs.map((run: { training_run_id: string }) => run.training_run_id)).toEqual([created.model_id]);
    const accessible = await bob.ok('training_runs?access_scope=accessible');
    expect(accessible.cursor.total_count).toBe(2);
    expect(accessible.training_runs[1]).toMatchObject({
      training_run_id: modelId,
      model_owner: 'alice',
      last_checkpoint: { checkpoint_id: 'weights/state', public: true, tinker_path: state },
      last_sampler_checkpoint: { checkpoint_id: 'sampler_weights/final', public: true },
    });
    expect(await bob.ok(`training_runs/${modelId}?access_scope=accessible`)).toMatchObject({ training_run_id: modelId, model_owner: 'alice' });
    expectTinkerError(await bob.call(`training_runs/${modelId}`), 404, /not found/);
    expectTinkerError(await bob.call(`training_runs/${modelId}/checkpoints`), 404, /not found/);
    expectTinkerError(await bob.call('training_runs?access_scope=everything'), 400, /access_scope must be 'owned' or 'accessible'/);

    // Private again: only what alice left public stays readable.
    await unpublish(alice, modelId, 'weights/state');
    expectTinkerError(await bob.call('weights_info', { tinker_path: state }), 404, /not found/);
    expect(await bob.ok(`training_runs/${modelId}?access_scope=accessible`)).toMatchObject({ last_checkpoint: null, last_sampler_checkpoint: { checkpoint_id: 'sampler_weights/final' } });
    await unpublish(alice, modelId, 'sampler_weights/final');
    expectTinkerError(await bob.call(`training_runs/${modelId}?access_scope=accessible`), 404, /not found/);
    expect((await bob.ok('training_runs?access_scope=accessible')).cursor.total_count).toBe(1);
    expectTinkerError(await bob.call('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 1, model_path: final }), 404, /not found/);
  });

  it('is no longer listed once deleted', async () => {
    const { modelId } = await savedModel();
    await publish(alice, modelId, 'weights/state');
    expect((await alice.call(checkpointRoute(modelId, 'weights/state'), undefined, {}, 'DELETE')).status).toBe(204);
    expect((await bob.ok('training_runs?access_scope=accessible')).training_runs).toEqual([]);
    expect((await api.store.query({ pk: 'TCKPTS#PUBLIC' })).items).toEqual([]);
  });
});

describe('time to live', () => {
  it('sets and removes a checkpoint’s expiry, shown as expires_at', async () => {
    const { modelId } = await savedModel();
    const before = Date.now();
    expect((await setTtl(alice, modelId, 'weights/state', { ttl_seconds: 7200 })).status).toBe(204);
    const [state] = await listed(alice, modelId);
    expect(Date.parse(state!.expires_at!) - before).toBeGreaterThanOrEqual(7200_000);
    expect(Date.parse(state!.expires_at!) - Date.now()).toBeLessThanOrEqual(7200_000);
    expect((await setTtl(alice, modelId, 'weights/state', { ttl_seconds: null })).status).toBe(204);
    expect((await listed(alice, modelId))[0]!.expires_at).toBeNull();
  });

  it('refuses a time to live outside an hour to ten years with 400 and a sentence, on the route and on saves', async () => {
    const { modelId, trainer } = await savedModel();
    for (const body of [{ ttl_seconds: 60 }, { ttl_seconds: TTL_SECONDS_MAX + 1 }, { ttl_seconds: 7200.5 }, { ttl_seconds: 'a day' }, {}]) {
      expectTinkerError(await setTtl(alice, modelId, 'weights/state', body), 400, /^ttl_seconds: must be a whole number of seconds from 3600 \(an hour\) to 315360000 \(ten years\)/);
    }
    expect((await setTtl(alice, modelId, 'weights/state', { ttl_seconds: TTL_SECONDS_MAX })).status).toBe(204);
    expectTinkerError(await alice.call('save_weights', { model_id: modelId, path: 'brief', seq_id: 3, ttl_seconds: 60 }), 400, /ttl_seconds: must be a whole number/);
    expectTinkerError(await alice.call('save_weights_for_sampler', { model_id: modelId, path: 'brief', seq_id: 3, ttl_seconds: 60 }), 400, /ttl_seconds: must be a whole number/);

    const saved = await alice.ok('save_weights_for_sampler', { model_id: modelId, path: 'kept-a-day', seq_id: 3, ttl_seconds: 86_400 });
    await trainer.answerSave(await trainer.take());
    await alice.settled(saved.request_id);
    const kept = (await listed(alice, modelId)).find((checkpoint) => checkpoint.checkpoint_id === 'sampler_weights/kept-a-day')!;
    expect(Date.parse(kept.expires_at!) - Date.now()).toBeGreaterThan(86_000_000);
  });
});

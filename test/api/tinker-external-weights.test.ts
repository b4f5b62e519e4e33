/**
 * Tinker 0.38's external weights (loops-api.md §2.14): `save_weights_external` saves the run's
 * adapter as `tinker://<model_id>/external_weights/<name>`, listed as `checkpoint_type: external`
 * and managed like any checkpoint, and `GET …/checkpoints/external_weights/<name>/external_weights_urls`
 * answers a signed URL per file — the path `tinker checkpoint download` takes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';
import { createModel, TinkerClient } from './tinker-support.ts';

const ADAPTER_CONFIG = '{"r": 8, "peft_type": "LORA"}';
const ADAPTER_WEIGHTS = 'safetensors bytes';

let api: TestApp;
let alice: TinkerClient;
let bob: TinkerClient;
let aliceKey: string;

beforeEach(async () => {
  api = await createTestApp({ serveBlobs: true, services: { training: { pollMs: 5 } }, tinker: { pollHoldMs: 50 } });
  aliceKey = await createUserKey(api.request, 'alice');
  alice = new TinkerClient(api, aliceKey);
  bob = new TinkerClient(api, await createUserKey(api.request, 'bob'));
});
afterEach(() => api.close());

const model = () => createModel(api, alice, 'alice');

/** Submits a save through `route`, has the trainer write the adapter where the engine operation says and answer; the future's answer. */
async function save(trainer: FakeTrainer, route: string, body: Record<string, unknown>) {
  const submitted = await alice.ok(route, { ...body, type: route });
  const held = await trainer.take();
  if (held.operation.kind !== 'save') throw new Error(`expected a save, got ${held.operation.kind}`);
  // The blob key of the prefix the engine was given (a file:// URI of it here).
  const prefix = held.operation.uri.slice(held.operation.uri.indexOf('training/runs/'));
  await api.jobs.blobs.put(`${prefix}adapter_config.json`, ADAPTER_CONFIG);
  await api.jobs.blobs.put(`${prefix}adapter_model.safetensors`, ADAPTER_WEIGHTS);
  await trainer.answerSave(held);
  const answer = await alice.settled(submitted.request_id);
  expect(answer.status, answer.text).toBe(200);
  return { held, answer: answer.body };
}

const checkpointRoute = (modelId: string, checkpointId: string, action = '') => `training_runs/${modelId}/checkpoints/${checkpointId}${action ? `/${action}` : ''}`;
const urlsOf = (client: TinkerClient, modelId: string, checkpointId: string) => client.call(checkpointRoute(modelId, checkpointId, 'external_weights_urls'));

function expectTinkerError(response: ApiResponse, status: number, message: RegExp) {
  expect(response.status, response.text).toBe(status);
  expect(response.body.message).toMatch(message);
  expect(response.text).not.toMatch(/\/work\/|\.ts:\d|at \w+ \(/);
}

describe('save_weights_external', () => {
  it('saves the adapter as external weights, lists them as external and hands out a signed URL per file that downloads without a key', async () => {
    const { modelId, trainer } = await model();
    const { held, answer } = await save(trainer, 'save_weights_external', { model_id: modelId, path: 'final', seq_id: 1 });

    // The engine writes the sampler's PEFT adapter under the external checkpoint's own prefix, and the policy version stays put.
    expect(held.operation).toEqual({ kind: 'save', what: 'sampler', publish: false, uri: expect.stringMatching(/\/checkpoints\/external\/final\/$/) });
    expect(answer).toEqual({ path: `tinker://${modelId}/external_weights/final`, size_bytes: 1020, type: 'save_weights_external' });

    const listed = (await alice.ok(`training_runs/${modelId}/checkpoints`)).checkpoints;
    expect(listed).toEqual([
      expect.objectContaining({ checkpoint_id: 'external_weights/final', checkpoint_type: 'external', tinker_path: `tinker://${modelId}/external_weights/final`, size_bytes: 1020, public: false, expires_at: null }),
    ]);
    expect((await alice.ok('checkpoints')).checkpoints).toEqual([expect.objectContaining({ checkpoint_id: 'external_weights/final', checkpoint_type: 'external' })]);

    const before = Date.now();
    const urls = await alice.ok(checkpointRoute(modelId, 'external_weights/final', 'external_weights_urls'));
    expect(Object.keys(urls.urls).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(Date.parse(urls.expires)).toBeGreaterThan(before);
    const config = await api.app.request(urls.urls['adapter_config.json']);
    expect(config.status).toBe(200);
    expect(await config.text()).toBe(ADAPTER_CONFIG);
    expect(await (await api.app.request(urls.urls['adapter_model.safetensors'])).text()).toBe(ADAPTER_WEIGHTS);
  });

  it('takes a time to live, and is deleted like any checkpoint, its URLs with it', async () => {
    const { modelId, trainer } = await model();
    const before = Date.now();
    await save(trainer, 'save_weights_external', { model_id: modelId, path: 'download', seq_id: 1, ttl_seconds: 3600 });
    const [listed] = (await alice.ok(`training_runs/${modelId}/checkpoints`)).checkpoints;
    expect(Date.parse(listed.expires_at) - before).toBeGreaterThanOrEqual(3600_000);
    expect(Date.parse(listed.expires_at) - before).toBeLessThan(3660_000);

    expect((await alice.call(checkpointRoute(modelId, 'external_weights/download'), undefined, {}, 'DELETE')).status).toBe(204);
    expect((await alice.ok(`training_runs/${modelId}/checkpoints`)).checkpoints).toEqual([]);
    expectTinkerError(await urlsOf(alice, modelId, 'external_weights/download'), 404, /Checkpoint external_weights\/download of model '.+' not found; list them with GET/);
  });

  it('is a Tinker export: Loops listings leave it out, beside the same run’s sampler weights', async () => {
    const { modelId, runId, trainer } = await model();
    await save(trainer, 'save_weights_external', { model_id: modelId, path: 'final', seq_id: 1 });
    await save(trainer, 'save_weights_for_sampler', { model_id: modelId, path: 'final', seq_id: 2 });
    const loops = await api.request('GET', `/v1/loops/checkpoints?run_id=${runId}`, { key: null, headers: { authorization: `Api-Key ${aliceKey}` } });
    expect(loops.status, loops.text).toBe(200);
    expect(loops.body.checkpoints.map((checkpoint: { target: string; checkpoint_id: string }) => [checkpoint.target, checkpoint.checkpoint_id])).toEqual([['sampler', 'final']]);
    expect((await alice.ok(`training_runs/${modelId}/checkpoints`)).checkpoints.map((checkpoint: { checkpoint_id: string }) => checkpoint.checkpoint_id)).toEqual([
      'external_weights/final',
      'sampler_weights/final',
    ]);
  });

  it('refuses a missing name, a bad one, age encryption and a bad time to live with a sentence', async () => {
    const { modelId } = await model();
    expectTinkerError(await alice.call('save_weights_external', { model_id: modelId, seq_id: 1 }), 400, /^path: name the external weights to save/);
    expectTinkerError(await alice.call('save_weights_external', { model_id: modelId, path: '../up', seq_id: 1 }), 400, /is not a checkpoint name/);
    expectTinkerError(
      await alice.call('save_weights_external', { model_id: modelId, path: 'enc', seq_id: 1, age_encryption_recipients: ['age1xyz'] }),
      400,
      /^age_encryption_recipients: age encryption is not supported here; save without age_encryption_recipients/,
    );
    expectTinkerError(await alice.call('save_weights_external', { model_id: modelId, path: 'short', seq_id: 1, ttl_seconds: 60 }), 400, /^ttl_seconds: must be a whole number of seconds from 3600/);
    expectTinkerError(await bob.call('save_weights_external', { model_id: modelId, path: 'theirs', seq_id: 1 }), 404, /Model '.+' not found/);
  });

  it('cannot be sampled or trained from: a sentence names what it holds', async () => {
    const { modelId, trainer } = await model();
    await save(trainer, 'save_weights_external', { model_id: modelId, path: 'final', seq_id: 1 });
    const sessionId = await alice.createSession();
    const path = `tinker://${modelId}/external_weights/final`;
    expectTinkerError(
      await alice.call('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, model_path: path, type: 'create_sampling_session' }),
      400,
      /holds external weights \(an adapter exported for download\), which a sampler cannot load/,
    );
    expectTinkerError(
      await alice.call('load_weights', { session_id: sessionId, model_seq_id: 1, path, optimizer: false, type: 'load_weights' }),
      400,
      /is an external weights checkpoint and holds no training state/,
    );
  });
});

describe('external_weights_urls', () => {
  it('answers 404 for an unknown model or checkpoint, and for another user’s', async () => {
    const { modelId, trainer } = await model();
    await save(trainer, 'save_weights_external', { model_id: modelId, path: 'final', seq_id: 1 });
    expectTinkerError(await urlsOf(alice, modelId, 'external_weights/nothing'), 404, /Checkpoint external_weights\/nothing of model '.+' not found/);
    expectTinkerError(await urlsOf(alice, 'no-such-model', 'external_weights/final'), 404, /not found/);
    expectTinkerError(await urlsOf(alice, modelId, 'other_weights/final'), 404, /not found/);
    expectTinkerError(await urlsOf(bob, modelId, 'external_weights/final'), 404, /Checkpoint external_weights\/final of model '.+' not found/);
  });

  it('refuses training and sampler checkpoints with 400 and says how to get their files', async () => {
    const { modelId, trainer } = await model();
    await save(trainer, 'save_weights', { model_id: modelId, path: 'state', seq_id: 1 });
    await save(trainer, 'save_weights_for_sampler', { model_id: modelId, path: 'final', seq_id: 2 });
    expectTinkerError(
      await urlsOf(alice, modelId, 'weights/state'),
      400,
      /^weights\/state is a training checkpoint; only external weights \(save_weights_external\) have external_weights_urls\. Export it with save_weights_external/,
    );
    expectTinkerError(await urlsOf(alice, modelId, 'sampler_weights/final'), 400, /^sampler_weights\/final is a sampler checkpoint; only external weights/);
  });
});

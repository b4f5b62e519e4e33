/**
 * The protocol-neutral training service (functions/core/training) through `services.training`,
 * with a fake trainer speaking the relay routes in place of the engine.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Actor } from '#core/actor.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import { IdempotencyConflictError, InvalidInputError, NotFoundError, RunInactiveError, ValidationError } from '#core/errors.ts';
import type { DomainEvent } from '#core/events/events.ts';
import type { CreateRunInput } from '#core/training/runs.ts';
import type { SubmittedOperation } from '#core/training/model.ts';
import type { TrainingService } from '#core/training/training-service.ts';
import { completeBake, createBake, createTestApp, seedTarget, type TestApp } from '../support/app.ts';
import { FakeTrainer, LORA_CONFIG } from '../support/fake-trainer.ts';
import { createRun, expectDone, OPTIM_STEP } from '../support/training.ts';

const TOY = 'bakehouse/toy-instruct';
const ALICE: Actor = { userId: ADMIN_USER, isAdmin: true };
const BOB: Actor = { userId: 'bob', isAdmin: false };
const FORWARD: SubmittedOperation = {
  kind: 'forward',
  backward: true,
  data: [{ tokens: [1, 2, 3], loss_fn_inputs: { target_tokens: { data: [2, 3, 4], dtype: 'int64', shape: [3] } } }],
  loss_fn: 'cross_entropy',
  loss_fn_config: null,
  normalization: 'token_mean_deferred',
  top_k_logprobs: 0,
};
const saveOp = (name: string, what: 'state' | 'sampler' = 'sampler', publish = false): SubmittedOperation => ({ kind: 'save', what, publish, name, ttlSeconds: null });

let api: TestApp;
let training: TrainingService;
let events: DomainEvent[];

beforeEach(async () => {
  events = [];
  api = await createTestApp({
    serveBlobs: true,
    services: { training: { pollMs: 5 }, publisher: { publish: async (event) => void events.push(event) } },
  });
  training = api.services.training;
});
afterEach(() => api.close());

async function newRun(actor: Actor = ALICE, overrides: Partial<CreateRunInput> = {}) {
  const session = await training.sessions.create(actor, { trainingProjectId: null });
  const run = await createRun(api, actor, TOY, { sessionId: session.id, seed: 7, maxSeqLen: 512, name: 'my run', relayUrl: 'http://api.test', ...overrides });
  return { session, run };
}

/** A run with its trainer ready. */
async function readyRun(actor: Actor = ALICE) {
  const { session, run } = await newRun(actor);
  return { session, run, trainer: await FakeTrainer.readyForRun(api, run.id) };
}

const submit = (runId: string, key: string, operation: SubmittedOperation, actor: Actor = ALICE) =>
  training.operations.submit(actor, runId, { idempotencyKey: key, operation });

/** Saves a checkpoint through the trainer and returns the poll's result. */
async function save(runId: string, trainer: FakeTrainer, name: string, what: 'state' | 'sampler' = 'sampler', publish = false) {
  await submit(runId, `save-${name}-${what}`, saveOp(name, what, publish));
  expect((await trainer.answerSave(await trainer.take())).status).toBe(200);
  const view = await training.operations.poll(ALICE, runId, `save-${name}-${what}`, { holdMs: 0 });
  if (view?.status !== 'done') throw new Error(`save not done: ${JSON.stringify(view)}`);
  return view.result;
}

describe('sessions', () => {
  it('creates and reads a session; another user cannot see it', async () => {
    const session = await training.sessions.create(ALICE, { trainingProjectId: 'proj-1' });
    expect(session).toMatchObject({ id: expect.stringMatching(/^[0-9A-Za-z]{7}$/), userId: ADMIN_USER, trainingProjectId: 'proj-1', createdAt: expect.any(String) });
    expect(await training.sessions.get(ALICE, session.id)).toEqual(session);
    await expect(training.sessions.get(BOB, session.id)).rejects.toThrow(NotFoundError);
    await expect(training.sessions.get(ALICE, 'nope123')).rejects.toThrow(NotFoundError);
    await expect(training.sessions.get(ALICE, 'nope123')).rejects.toThrow("Session 'nope123' not found for this API key; check the session id, or create a session.");
  });
});

describe('runs', () => {
  it('creates a run, starts its trainer with the run settings, and reports run.created', async () => {
    const { session, run } = await newRun();
    expect(run).toMatchObject({
      id: expect.stringMatching(/^[0-9A-Za-z]{7}$/),
      userId: ADMIN_USER,
      sessionId: session.id,
      protocol: 'loops',
      name: 'my run',
      baseModel: TOY,
      loraRank: 8,
      seed: 7,
      maxSeqLen: 512,
      availabilityModel: 'dedicated',
      scaleDownDelaySeconds: 600,
      fromPath: null,
      state: 'active',
      phase: 'starting',
      error: null,
    });
    const trainer = await FakeTrainer.started(api);
    expect(trainer.spec.trainer).toMatchObject({
      run_id: run.id,
      model: { base_model: TOY, adapters: [] },
      lora_rank: 8,
      seed: 7,
      max_seq_len: 512,
      relay_url: 'http://api.test',
      idle_timeout_s: 600,
      state_uri: expect.stringMatching(new RegExp(`^file://.*/training/runs/${run.id}/state/$`)),
    });
    expect(trainer.spec.trainer.relay_token.length).toBeGreaterThanOrEqual(32);
    expect(events.map((event) => [event.type, event.data])).toEqual([['run.created', { run_id: run.id, base_model: TOY, status: 'ACTIVE', error: null }]]);
  });

  it('trains on a baked checkpoint: the trainer loads the base with its adapter chain', async () => {
    await seedTarget(api.request, 'r1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await completeBake(api, 'r1', 'b1', [2]);
    const { run } = await newRun(ALICE, { baseModel: `${ADMIN_USER}/r1/b1/2` });
    expect(run.baseModel).toBe(`${ADMIN_USER}/r1/b1/2`);
    const trainer = await FakeTrainer.started(api);
    expect(trainer.spec.trainer.model).toEqual({
      base_model: 'Qwen/Qwen3-32B',
      adapters: [{ model_name: `${ADMIN_USER}/r1/b1/2`, uri: expect.stringMatching(/\/ckpts\/2\/$/) }],
    });
  });

  it('refuses an unknown base model, a rank out of range, and another user’s session', async () => {
    const session = await training.sessions.create(ALICE, { trainingProjectId: null });
    const input = { sessionId: session.id, protocol: 'loops' as const, baseModel: TOY, loraRank: 8, seed: null, maxSeqLen: null, name: null, availabilityModel: 'spot' as const, scaleDownDelaySeconds: 60, fromPath: null, relayUrl: 'http://api.test' };
    await expect(training.runs.create(ALICE, { ...input, baseModel: 'nope/model' })).rejects.toThrow(
      new InvalidInputError(`The base model 'nope/model' is not available; use one of Qwen/Qwen3-32B, Qwen/Qwen3-8B, ${TOY}, or a baked checkpoint 'user/repo/bake/step' of yours.`),
    );
    await expect(training.runs.create(ALICE, { ...input, baseModel: 'bob/r1/b1/2' })).rejects.toThrow(InvalidInputError);
    await expect(training.runs.create(ALICE, { ...input, loraRank: 513 })).rejects.toThrow(/from 1 to 512/);
    await expect(training.runs.create(ALICE, { ...input, loraRank: 0 })).rejects.toThrow(InvalidInputError);
    await expect(training.runs.create(ALICE, { ...input, scaleDownDelaySeconds: 0 })).rejects.toThrow(/from 1 to 3600/);
    await expect(training.runs.create(ALICE, { ...input, scaleDownDelaySeconds: 3601 })).rejects.toThrow(/from 1 to 3600/);
    await expect(training.runs.create(ALICE, { ...input, maxSeqLen: 0 })).rejects.toThrow(/max_seq_len/);
    await expect(training.runs.create(BOB, input)).rejects.toThrow(NotFoundError);
    expect(api.jobs.compute.submitted).toEqual([]);
  });

  it('starts from a weights checkpoint of the caller with its base model and rank, and refuses any other path', async () => {
    const { run, trainer } = await readyRun();
    await save(run.id, trainer, 'resume', 'state');
    await save(run.id, trainer, 'adapter', 'sampler');
    const weights = `bt://loops:${run.id}/weights/resume`;
    const { run: resumed } = await newRun(ALICE, { fromPath: weights });
    expect(resumed.fromPath).toBe(weights);
    await expect(newRun(ALICE, { fromPath: `bt://loops:${run.id}/sampler_weights/adapter` })).rejects.toThrow(/sampler checkpoint and holds no training state/);
    await expect(newRun(ALICE, { fromPath: `bt://loops:${run.id}/weights/missing` })).rejects.toThrow(NotFoundError);
    await expect(newRun(BOB, { fromPath: weights })).rejects.toThrow(NotFoundError);
    await expect(newRun(ALICE, { fromPath: weights, loraRank: 16 })).rejects.toThrow(/lora_rank 8/);
    await expect(newRun(ALICE, { fromPath: 'hf://org/repo' })).rejects.toThrow(InvalidInputError);
  });

  it('gets and lists the caller’s runs, newest first, filtered by id or base model', async () => {
    const { run: first } = await newRun();
    await new Promise((resolve) => setTimeout(resolve, 2));
    const { run: second } = await newRun(ALICE, { baseModel: 'Qwen/Qwen3-8B' });
    const { run: bobs } = await newRun(BOB);
    expect((await training.runs.get(ALICE, first.id)).id).toBe(first.id);
    await expect(training.runs.get(BOB, first.id)).rejects.toThrow(NotFoundError);
    await expect(training.runs.get(BOB, first.id)).rejects.toThrow(`Training run '${first.id}' not found for this API key; check the run id, or list your runs to find it.`);
    expect((await training.runs.list(ALICE)).map((run) => run.id)).toEqual([second.id, first.id]);
    expect((await training.runs.list(ALICE, { baseModel: TOY })).map((run) => run.id)).toEqual([first.id]);
    expect((await training.runs.list(ALICE, { runId: second.id })).map((run) => run.id)).toEqual([second.id]);
    expect((await training.runs.list(ALICE, { runId: bobs.id }))).toEqual([]);
    expect((await training.runs.list(BOB)).map((run) => run.id)).toEqual([bobs.id]);
  });

  it('reports the trainer phase, and counts each health call as activity', async () => {
    const { run } = await newRun();
    expect(await training.runs.health(ALICE, run.id)).toBe('starting');
    const trainer = await FakeTrainer.started(api);
    await trainer.ready();
    expect(await training.runs.health(ALICE, run.id)).toBe('ready');
    expect((await training.runs.get(ALICE, run.id)).phase).toBe('ready');
    expect(events.map((event) => event.type)).toEqual(['run.created', 'run.ready']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await trainer.next(0)).body.idle_s).toBeGreaterThanOrEqual(0.3);
    await training.runs.health(ALICE, run.id);
    expect((await trainer.next(0)).body.idle_s).toBeLessThan(0.2);
    await expect(training.runs.health(BOB, run.id)).rejects.toThrow(NotFoundError);
  });

  it('deactivates for good: the trainer is stopped, waiting operations fail, checkpoints stay; a repeat changes nothing', async () => {
    const { run, trainer } = await readyRun();
    await save(run.id, trainer, 'kept');
    await submit(run.id, 'held', FORWARD);
    expect((await trainer.take()).id).toBe('held');
    await submit(run.id, 'waiting', OPTIM_STEP);
    const stopped = await training.runs.deactivate(ALICE, run.id);
    expect(stopped).toMatchObject({ state: 'inactive', error: null });
    expect(api.jobs.compute.terminated).toEqual([`test-${trainer.jobId}`]);
    for (const id of ['held', 'waiting']) {
      expect(await training.operations.poll(ALICE, run.id, id, { holdMs: 0 })).toEqual({
        status: 'error',
        error: 'The run was deactivated before this operation ran; its checkpoints are kept, so create a new run from one to continue training.',
        errorClass: 'RuntimeError',
      });
    }
    expect(events.filter((event) => event.type === 'run.stopped').map((event) => event.data)).toEqual([{ run_id: run.id, base_model: TOY, status: 'INACTIVE', error: null }]);
    await expect(training.runs.health(ALICE, run.id)).rejects.toThrow(new RunInactiveError(`Run ${run.id} was deactivated; its checkpoints are kept, so create a new run from one to continue training.`));
    await expect(submit(run.id, 'late', OPTIM_STEP)).rejects.toThrow(RunInactiveError);
    expect((await trainer.next(0)).status).toBe(410);
    expect(await training.runs.deactivate(ALICE, run.id)).toMatchObject({ state: 'inactive' });
    expect(events.filter((event) => event.type === 'run.stopped')).toHaveLength(1);
    expect((await training.checkpoints.list(ALICE, { runId: run.id })).map((checkpoint) => checkpoint.name)).toEqual(['kept']);
    await expect(training.runs.deactivate(BOB, run.id)).rejects.toThrow(NotFoundError);
  });
});

describe('operations', () => {
  it('accepts at once, hands operations to the trainer in order, and answers polls with the result', async () => {
    const { run, trainer } = await readyRun();
    expect(await submit(run.id, 'op-1', FORWARD)).toEqual({ operationId: 'op-1', seq: 1 });
    expect(await submit(run.id, 'op-2', OPTIM_STEP)).toEqual({ operationId: 'op-2', seq: 2 });
    expect(await training.operations.poll(ALICE, run.id, 'op-1', { holdMs: 0 })).toEqual({ status: 'pending' });
    const first = await trainer.take();
    expect(first).toEqual({ id: 'op-1', seq: 1, operation: FORWARD });
    const waiting = training.operations.poll(ALICE, run.id, 'op-1', { holdMs: 5000 });
    const result = { loss: 1.5, loss_sum: 4.5, active_tokens: 3, outputs: [], metrics: {} };
    expect((await trainer.post('op-1', { status: 'done', result })).status).toBe(200);
    expectDone(await waiting, result);
    expect(await trainer.take()).toEqual({ id: 'op-2', seq: 2, operation: OPTIM_STEP });
    await trainer.post('op-2', { status: 'error', error: 'The learning rate is not finite.', error_class: 'ValueError' });
    expect(await training.operations.poll(ALICE, run.id, 'op-2', { holdMs: 0 })).toEqual({ status: 'error', error: 'The learning rate is not finite.', errorClass: 'ValueError' });
  });

  it('holds a pending poll for holdMs, and answers undefined for unknown ids and other users’ runs', async () => {
    const { run } = await readyRun();
    await submit(run.id, 'slow', FORWARD);
    const started = Date.now();
    expect(await training.operations.poll(ALICE, run.id, 'slow', { holdMs: 150 })).toEqual({ status: 'pending' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await training.operations.poll(ALICE, run.id, 'unknown', { holdMs: 0 })).toBeUndefined();
    expect(await training.operations.poll(BOB, run.id, 'slow', { holdMs: 0 })).toBeUndefined();
    const { run: other } = await newRun();
    expect(await training.operations.poll(ALICE, other.id, 'slow', { holdMs: 0 })).toBeUndefined();
    await expect(submit(run.id, 'bobs', FORWARD, BOB)).rejects.toThrow(NotFoundError);
  });

  it('deduplicates by idempotency key: the same operation once, a different one a conflict', async () => {
    const { run, trainer } = await readyRun();
    expect(await submit(run.id, 'k', FORWARD)).toEqual({ operationId: 'k', seq: 1 });
    // The same operation with its keys in another order is the same request.
    const reordered = Object.fromEntries(Object.entries(FORWARD).reverse()) as SubmittedOperation;
    expect(await submit(run.id, 'k', reordered)).toEqual({ operationId: 'k', seq: 1 });
    await expect(submit(run.id, 'k', OPTIM_STEP)).rejects.toThrow(IdempotencyConflictError);
    expect((await trainer.take()).id).toBe('k');
    await trainer.post('k', { status: 'done', result: { loss: 1 } });
    expect(await submit(run.id, 'k', FORWARD)).toEqual({ operationId: 'k', seq: 1 });
    expect((await trainer.next(0)).body.operation).toBeNull();
    await expect(submit(run.id, '', FORWARD)).rejects.toThrow(ValidationError);
  });

  it('numbers 50 concurrent submits with 10 repeated keys contiguously, once each, and hands them out in that order', async () => {
    const { run, trainer } = await readyRun();
    const keysSent = Array.from({ length: 50 }, (_, i) => `key-${i < 40 ? i : i - 40}`);
    const accepted = await Promise.all(keysSent.map((key) => submit(run.id, key, OPTIM_STEP)));
    const seqOf = new Map(accepted.map(({ operationId, seq }) => [operationId, seq]));
    expect(seqOf.size).toBe(40);
    for (const { operationId, seq } of accepted) expect(seqOf.get(operationId)).toBe(seq);
    expect([...seqOf.values()].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const handedOut: number[] = [];
    for (let i = 0; i < 40; i++) {
      const operation = await trainer.take();
      expect(operation.seq).toBe(seqOf.get(operation.id));
      handedOut.push(operation.seq);
      await trainer.post(operation.id, { status: 'done', result: { step: i + 1, learning_rate: 1e-4, grad_norm: 0 } });
    }
    expect(handedOut).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect((await trainer.next(0)).body.operation).toBeNull();
  });

  it('keeps large bodies and results in Blobs and hands them over whole', async () => {
    const { run, trainer } = await readyRun();
    const tokens = Array.from({ length: 60_000 }, (_, i) => i % 1000);
    const big: SubmittedOperation = { ...FORWARD, data: [{ tokens, loss_fn_inputs: { target_tokens: { data: tokens, dtype: 'int64', shape: [tokens.length] } } }] } as SubmittedOperation;
    await submit(run.id, 'big', big);
    const item = await api.store.get({ pk: `TRUN#${run.id}`, sk: 'OP#big' });
    expect(item?.body).toBeUndefined();
    expect(item?.body_blob).toMatch(/^tmp\/training\//);
    const held = await trainer.take();
    expect(held.operation).toEqual(big);
    const result = { loss: 1, loss_sum: 1, active_tokens: 1, outputs: [{ logprobs: { data: tokens, dtype: 'float32', shape: [tokens.length] } }], metrics: {} };
    await trainer.post('big', { status: 'done', result });
    expectDone(await training.operations.poll(ALICE, run.id, 'big', { holdMs: 0 }), result);
    expect(await api.jobs.blobs.get(item?.body_blob as string)).toBeUndefined();
  });

  it('gives saves their storage and checks save names and load paths', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 's', saveOp('step-1', 'state'));
    const held = await trainer.take();
    expect(held.operation).toEqual({ kind: 'save', what: 'state', publish: false, uri: expect.stringMatching(new RegExp(`^file://.*/training/runs/${run.id}/checkpoints/trainer/step-1/$`)) });
    await trainer.answerSave(held);
    for (const name of ['', '..', 'a/b', 'x'.repeat(129), 'sp ace']) await expect(submit(run.id, `bad-${name}`, saveOp(name))).rejects.toThrow(ValidationError);
    await save(run.id, trainer, 'adapter');

    await submit(run.id, 'l', { kind: 'load', path: `bt://loops:${run.id}/weights/step-1`, withOptimizer: true });
    expect((await trainer.take()).operation).toEqual({ kind: 'load', uri: (held.operation as { uri: string }).uri, with_optimizer: true });
    await expect(submit(run.id, 'l2', { kind: 'load', path: `bt://loops:${run.id}/sampler_weights/adapter`, withOptimizer: false })).rejects.toThrow(
      new ValidationError(`path: bt://loops:${run.id}/sampler_weights/adapter is a sampler checkpoint and holds no training state; load a bt://loops:<run_id>/weights/<name> checkpoint.`),
    );
    await expect(submit(run.id, 'l3', { kind: 'load', path: `bt://loops:${run.id}/weights/nope`, withOptimizer: false })).rejects.toThrow(NotFoundError);
    await expect(submit(run.id, 'l4', { kind: 'load', path: 'weights/step-1', withOptimizer: false })).rejects.toThrow(ValidationError);
    const { run: bobs } = await newRun(BOB);
    await expect(submit(bobs.id, 'l5', { kind: 'load', path: `bt://loops:${run.id}/weights/step-1`, withOptimizer: false }, BOB)).rejects.toThrow(NotFoundError);
  });
});

describe('checkpoints', () => {
  it('records a save before answering it, with its path, and emits checkpoint.saved', async () => {
    const { run, trainer } = await readyRun();
    const result = await save(run.id, trainer, 'step-1', 'sampler', true);
    expect(result).toEqual({ step: 3, policy_version: 3, files: expect.any(Array), lora_config: LORA_CONFIG, path: `bt://loops:${run.id}/sampler_weights/step-1`, checkpoint_id: 'step-1' });
    const [checkpoint] = await training.checkpoints.list(ALICE, { runId: run.id });
    expect(checkpoint).toEqual({
      id: expect.stringMatching(/^[0-9A-Za-z]{7}$/),
      runId: run.id,
      userId: ADMIN_USER,
      name: 'step-1',
      target: 'sampler',
      path: `bt://loops:${run.id}/sampler_weights/step-1`,
      baseModel: TOY,
      loraConfig: LORA_CONFIG,
      step: 3,
      files: [
        { name: 'adapter_config.json', size_bytes: 20 },
        { name: 'adapter_model.safetensors', size_bytes: 1000 },
      ],
      sizeBytes: 1020,
      ephemeral: false,
      expiresAt: null,
      public: false,
      createdAt: expect.any(String),
    });
    expect(events.filter((event) => event.type === 'checkpoint.saved').map((event) => event.data)).toEqual([
      { run_id: run.id, checkpoint_id: 'step-1', target: 'sampler', path: checkpoint!.path, created_at: checkpoint!.createdAt },
    ]);
    expect(await training.checkpoints.get(ALICE, checkpoint!.id)).toEqual(checkpoint);
    expect(await training.checkpoints.resolve(ALICE, checkpoint!.path)).toEqual(checkpoint);
    expect(await training.checkpoints.list(ALICE, { path: checkpoint!.path })).toEqual([checkpoint]);
    expect(await training.checkpoints.list(ALICE, { baseModel: TOY })).toEqual([checkpoint]);
    expect(await training.checkpoints.list(ALICE, { baseModel: 'Qwen/Qwen3-8B' })).toEqual([]);

    // Saved again under the same name: the same record, rewritten.
    await submit(run.id, 'again', saveOp('step-1'));
    await trainer.answerSave(await trainer.take(), 9);
    const [rewritten] = await training.checkpoints.list(ALICE, { runId: run.id });
    expect(rewritten).toMatchObject({ id: checkpoint!.id, step: 9 });
  });

  it('hides other users’ checkpoints', async () => {
    const { run, trainer } = await readyRun();
    await save(run.id, trainer, 'mine');
    const [checkpoint] = await training.checkpoints.list(ALICE, { runId: run.id });
    await expect(training.checkpoints.get(BOB, checkpoint!.id)).rejects.toThrow(NotFoundError);
    await expect(training.checkpoints.resolve(BOB, checkpoint!.path)).rejects.toThrow(NotFoundError);
    await expect(training.checkpoints.resolve(BOB, checkpoint!.path)).rejects.toThrow(`Checkpoint ${checkpoint!.path} not found for this API key; check the path, or list your checkpoints to find it.`);
    await expect(training.checkpoints.list(BOB, { runId: run.id })).rejects.toThrow(NotFoundError);
    expect(await training.checkpoints.list(BOB, { path: checkpoint!.path })).toEqual([]);
    expect(await training.checkpoints.list(BOB, { baseModel: TOY })).toEqual([]);
    await expect(training.checkpoints.files(BOB, checkpoint!.id, { pageSize: 10, pageToken: 0 })).rejects.toThrow(NotFoundError);
    await expect(training.checkpoints.resolve(ALICE, 'bt://nowhere')).rejects.toThrow(InvalidInputError);
  });

  it('pages the files with presigned URLs that work without an API key', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'save', saveOp('dl'));
    const held = await trainer.take();
    const prefix = `training/runs/${run.id}/checkpoints/sampler/dl/`;
    await api.jobs.blobs.put(`${prefix}adapter_config.json`, '{"r": 8}');
    await api.jobs.blobs.put(`${prefix}adapter_model.safetensors`, 'weights');
    await trainer.answerSave(held);
    const [checkpoint] = await training.checkpoints.list(ALICE, { runId: run.id });
    const first = await training.checkpoints.files(ALICE, checkpoint!.id, { pageSize: 1, pageToken: 0 });
    expect(first).toEqual({
      files: [{ url: expect.any(String), relative_file_name: 'adapter_config.json', size_bytes: 20, last_modified: checkpoint!.createdAt }],
      nextPageToken: 1,
      totalCount: 2,
    });
    const second = await training.checkpoints.files(ALICE, checkpoint!.id, { pageSize: 1, pageToken: 1 });
    expect(second.files.map((file) => file.relative_file_name)).toEqual(['adapter_model.safetensors']);
    expect(second.nextPageToken).toBeNull();
    const download = await api.app.request(second.files[0]!.url);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('weights');
  });

  it('validates sampler checkpoints for a run with a sentence for each refusal', async () => {
    const { run, trainer } = await readyRun();
    await save(run.id, trainer, 'adapter');
    await save(run.id, trainer, 'state', 'state');
    const path = `bt://loops:${run.id}/sampler_weights/adapter`;
    expect((await training.checkpoints.validate(ALICE, path, run.id)).path).toBe(path);
    expect((await training.checkpoints.validate(ALICE, path)).path).toBe(path);
    await expect(training.checkpoints.validate(ALICE, 'not a path')).rejects.toThrow(/is not a checkpoint path/);
    await expect(training.checkpoints.validate(ALICE, `bt://loops:${run.id}/weights/state`)).rejects.toThrow(/holds training state/);
    await expect(training.checkpoints.validate(ALICE, `bt://loops:${run.id}/sampler_weights/none`)).rejects.toThrow(/does not exist or you cannot read it; list your checkpoints to find its path\.$/);
    await expect(training.checkpoints.validate(BOB, path)).rejects.toThrow(InvalidInputError);
    const { run: other } = await newRun(ALICE, { baseModel: 'Qwen/Qwen3-8B' });
    await expect(training.checkpoints.validate(ALICE, path, other.id)).rejects.toThrow(`was trained on ${TOY}, but run ${other.id} trains Qwen/Qwen3-8B`);
  });

  it('deletes ephemeral checkpoints beyond the newest 8 once unsampled for the idle time, files included', async () => {
    await api.close();
    api = await createTestApp({ services: { training: { pollMs: 5, ephemeralIdleS: 0.4 } } });
    training = api.services.training;
    const { run, trainer } = await readyRun();
    const names = Array.from({ length: 11 }, (_, i) => `default-${String(i).padStart(32, '0')}`);
    for (const name of names) {
      await submit(run.id, `pub-${name}`, saveOp(name, 'sampler', true));
      const held = await trainer.take();
      await api.jobs.blobs.put(`training/runs/${run.id}/checkpoints/sampler/${name}/adapter_model.safetensors`, 'w');
      await trainer.answerSave(held);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // Published under a plain name, or staged without publishing: never ephemeral.
    await save(run.id, trainer, 'pinned', 'sampler', true);
    await save(run.id, trainer, `staged-${'a'.repeat(32)}`, 'sampler', false);
    const all = await training.checkpoints.list(ALICE, { runId: run.id });
    expect(all.filter((checkpoint) => checkpoint.ephemeral).map((checkpoint) => checkpoint.name)).toEqual(names);
    expect(await training.checkpoints.sweep()).toBe(0);

    await new Promise((resolve) => setTimeout(resolve, 500));
    await training.checkpoints.markSampled(all.find((checkpoint) => checkpoint.name === names[1])!);
    expect(await training.checkpoints.sweep()).toBe(2);
    const left = (await training.checkpoints.list(ALICE, { runId: run.id })).map((checkpoint) => checkpoint.name);
    expect(left).toEqual([...names.slice(1, 2), ...names.slice(3), 'pinned', `staged-${'a'.repeat(32)}`]);
    expect(await api.jobs.blobs.list(`training/runs/${run.id}/checkpoints/sampler/${names[0]}/`)).toEqual([]);
    expect(await api.jobs.blobs.list(`training/runs/${run.id}/checkpoints/sampler/${names[3]}/`)).toHaveLength(1);
    await expect(training.checkpoints.resolve(ALICE, `bt://loops:${run.id}/sampler_weights/${names[0]}`)).rejects.toThrow(NotFoundError);
  });
  it('hides and then deletes a checkpoint saved with a time to live once it expires', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'ttl', { kind: 'save', what: 'sampler', publish: false, name: 'brief', ttlSeconds: 1 });
    const held = await trainer.take();
    await api.jobs.blobs.put(`training/runs/${run.id}/checkpoints/sampler/brief/adapter_model.safetensors`, 'w');
    await trainer.answerSave(held);
    const path = `bt://loops:${run.id}/sampler_weights/brief`;
    const checkpoint = await training.checkpoints.resolve(ALICE, path);
    expect(Date.parse(checkpoint.expiresAt!) - Date.parse(checkpoint.createdAt)).toBe(1000);
    expect(await training.checkpoints.sweep()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expect(training.checkpoints.resolve(ALICE, path)).rejects.toThrow(NotFoundError);
    expect(await training.checkpoints.list(ALICE, { runId: run.id })).toEqual([]);
    expect(await training.checkpoints.sweep()).toBe(1);
    expect(await api.jobs.blobs.list(`training/runs/${run.id}/checkpoints/sampler/brief/`)).toEqual([]);
    await expect(submit(run.id, 'ttl-0', { kind: 'save', what: 'sampler', publish: false, name: 'x', ttlSeconds: 0 })).rejects.toThrow(ValidationError);
    await expect(training.checkpoints.list(ALICE, { path: 'weights/brief' })).rejects.toThrow(InvalidInputError);
  });

  it('keeps results for a day after they end, and no longer', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'kept', OPTIM_STEP);
    await trainer.take();
    await trainer.post('kept', { status: 'done', result: { step: 1 } });
    const item = await api.store.get({ pk: `TRUN#${run.id}`, sk: 'OP#kept' });
    expect((item?.ttl as number) - Date.now() / 1000).toBeGreaterThan(24 * 3600 - 60);
    expect((item?.ttl as number) - Date.now() / 1000).toBeLessThanOrEqual(24 * 3600);
  });
});

describe('samplers', () => {
  it('pairs one sampler per run, whoever asks first, with the run’s base model', async () => {
    const { session, run } = await newRun();
    const [first, second] = await Promise.all([
      training.samplers.createPaired(ALICE, { sessionId: session.id, runId: run.id }),
      training.samplers.createPaired(ALICE, { sessionId: session.id, runId: run.id }),
    ]);
    expect(second).toEqual(first);
    expect(first).toEqual({ id: expect.stringMatching(/^[0-9A-Za-z]{7}$/), userId: ADMIN_USER, sessionId: session.id, runId: run.id, baseModel: TOY, modelPath: null, createdAt: expect.any(String) });
    expect(await training.samplers.createPaired(ALICE, { sessionId: session.id, runId: run.id })).toEqual(first);
    expect(await training.modelSpecFor(first)).toEqual({ base_model: TOY, adapters: [] });
    await expect(training.samplers.createPaired(BOB, { sessionId: session.id, runId: run.id })).rejects.toThrow(NotFoundError);
    const { run: stopped } = await newRun();
    await training.runs.deactivate(ALICE, stopped.id);
    await expect(training.samplers.createPaired(ALICE, { sessionId: session.id, runId: stopped.id })).rejects.toThrow(RunInactiveError);
  });

  it('makes standalone samplers from a base model or a sampler checkpoint, and lists the caller’s, newest first', async () => {
    const { session, run, trainer } = await readyRun();
    await save(run.id, trainer, 'adapter');
    await save(run.id, trainer, 'state', 'state');
    const base = await training.samplers.createStandalone(ALICE, { sessionId: session.id, baseModel: 'Qwen/Qwen3-8B' });
    expect(base).toMatchObject({ runId: null, baseModel: 'Qwen/Qwen3-8B', modelPath: null });
    await new Promise((resolve) => setTimeout(resolve, 2));
    const path = `bt://loops:${run.id}/sampler_weights/adapter`;
    const fromCheckpoint = await training.samplers.createStandalone(ALICE, { sessionId: session.id, modelPath: path });
    expect(fromCheckpoint).toMatchObject({ runId: null, baseModel: TOY, modelPath: path });
    expect(await training.modelSpecFor(fromCheckpoint)).toEqual({
      base_model: TOY,
      adapters: [{ model_name: path, uri: expect.stringMatching(new RegExp(`/training/runs/${run.id}/checkpoints/sampler/adapter/$`)), version: expect.any(String) }],
    });
    const checkpoint = await training.checkpoints.resolve(ALICE, path);
    expect(await training.modelSpecFor(checkpoint)).toEqual(await training.modelSpecFor(fromCheckpoint));
    await expect(training.samplers.createStandalone(ALICE, { sessionId: session.id, modelPath: `bt://loops:${run.id}/weights/state` })).rejects.toThrow(InvalidInputError);
    await expect(training.samplers.createStandalone(ALICE, { sessionId: session.id, baseModel: 'nope' })).rejects.toThrow(InvalidInputError);
    const bobSession = await training.sessions.create(BOB, { trainingProjectId: null });
    await expect(training.samplers.createStandalone(BOB, { sessionId: bobSession.id, modelPath: path })).rejects.toThrow(NotFoundError);
    expect((await training.samplers.list(ALICE)).map((sampler) => sampler.id)).toEqual([fromCheckpoint.id, base.id]);
    expect(await training.samplers.get(ALICE, base.id)).toEqual(base);
    await expect(training.samplers.get(BOB, base.id)).rejects.toThrow(NotFoundError);
    expect(await training.samplers.list(BOB)).toEqual([]);
  });
});

/**
 * Token-level sampling (functions/core/training/sampling.ts) over the chat sampler's relay, with a
 * fake sampler answering through the relay routes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdempotencyConflictError, NotFoundError, ValidationError } from '#core/errors.ts';
import { keys } from '#core/keys.ts';
import type { TrainingSampler } from '#core/training/model.ts';
import type { SampleRequest } from '#schemas/relay.ts';
import { createTestApp, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';
import { RELAY_URL, actorOf, createRun, createSampler, saveCheckpoint } from '../support/training.ts';

const TOY = 'bakehouse/toy-instruct';
const OTHER_BASE = 'Qwen/Qwen3-8B';
const alice = actorOf('alice');
const bob = actorOf('bob');

const request = (overrides: Partial<SampleRequest> = {}): SampleRequest => ({
  prompt_tokens: [1, 2, 3],
  n: 2,
  temperature: 0.7,
  top_p: 0.9,
  top_k: 20,
  max_tokens: 16,
  seed: 5,
  stop: ['\n'],
  stop_token_ids: [7],
  prompt_logprobs: 1,
  ...overrides,
});

describe('token-level sampling', () => {
  let api: TestApp;
  let sampler: TrainingSampler;
  const sampling = () => api.services.training.sampling;
  const submit = (key: string, overrides: Partial<Parameters<ReturnType<typeof sampling>['submit']>[2]> = {}, actor = alice, samplerId = sampler.id) =>
    sampling().submit(actor, samplerId, { idempotencyKey: key, checkpointPath: null, runId: null, request: request(), relayUrl: RELAY_URL, ...overrides });
  const poll = (operationId: string, holdMs = 0, actor = alice, samplerId = sampler.id) => sampling().poll(actor, samplerId, operationId, { holdMs });

  beforeEach(async () => {
    api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
    sampler = await createSampler(api, alice, { baseModel: TOY });
  });
  afterEach(() => api.close());

  it('queues a token-level request for the base model sampler and polls its result, kept for later polls', async () => {
    expect(await submit('op-1')).toEqual({ operationId: 'op-1' });
    const fake = await FakeSampler.started(api);
    expect(fake.spec.sampler).toMatchObject({ base_model: TOY, relay_url: RELAY_URL, max_unset_tokens: 4096 });
    const taken = await fake.takeSample();
    expect(taken).toMatchObject({ kind: 'tokens', model: { base_model: TOY, adapters: [] }, sample: request() });
    expect(taken.id).toMatch(/^sample-[0-9a-f]{32}\.1$/);
    expect(await poll('op-1')).toEqual({ status: 'pending' });

    const sampled = {
      sequences: [
        { tokens: [9, 8], logprobs: [-0.1, -0.2], finish_reason: 'stop' as const },
        { tokens: [4], logprobs: [-1.5], finish_reason: 'length' as const },
      ],
      prompt_tokens: [1, 2, 3],
      prompt_logprobs: [null, -2, -3],
      topk_prompt_logprobs: [null, [[2, -2]], [[5, -1]]] as [number, number][][],
    };
    expect((await fake.answerSample(taken, sampled)).status).toBe(200);
    expect(await poll('op-1')).toEqual({ status: 'done', result: sampled });
    expect(await poll('op-1')).toEqual({ status: 'done', result: sampled });
  });

  it("tells the sampler the server's cap for requests without max_tokens", async () => {
    const capped = await createTestApp({ services: { sampler: { maxUnsetTokens: 512 } } });
    try {
      const own = await createSampler(capped, alice, { baseModel: TOY });
      await capped.services.training.sampling.submit(alice, own.id, { idempotencyKey: 'k', checkpointPath: null, runId: null, request: request({ max_tokens: null }), relayUrl: RELAY_URL });
      const fake = await FakeSampler.started(capped);
      expect(fake.spec.sampler.max_unset_tokens).toBe(512);
      expect((await fake.takeSample()).sample.max_tokens).toBeNull();
    } finally {
      await capped.close();
    }
  });

  it('holds a pending poll up to holdMs, and answers as soon as the result lands', async () => {
    await submit('held');
    const fake = await FakeSampler.started(api);
    const taken = await fake.takeSample();
    const started = Date.now();
    expect(await poll('held', 60)).toEqual({ status: 'pending' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);

    const waiting = poll('held', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await fake.answerSample(taken);
    const answeredAt = Date.now();
    expect(await waiting).toMatchObject({ status: 'done', result: { sequences: [{ tokens: [3, 2, 1] }, { tokens: [3, 2, 1] }] } });
    expect(Date.now() - answeredAt).toBeLessThan(1000);
  });

  it('keeps results too large for a Store item in Blobs', async () => {
    await submit('big', { request: request({ n: 1 }) });
    const fake = await FakeSampler.started(api);
    const taken = await fake.takeSample();
    const tokens = Array.from({ length: 40_000 }, (_, i) => i % 1000);
    const big = { sequences: [{ tokens, logprobs: tokens.map((t) => -t / 7), finish_reason: 'length' as const }] };
    expect((await fake.answerSample(taken, big)).status).toBe(200);
    expect(await api.jobs.blobs.list('tmp/chat/')).toEqual([expect.stringMatching(/^tmp\/chat\/sample-[0-9a-f]{32}\.chunks\/0\.json$/)]);
    const view = await poll('big');
    expect(view).toMatchObject({ status: 'done', result: { sequences: [{ tokens, finish_reason: 'length' }] } });
  });

  it('runs a retried submit once and refuses the same key with a different body', async () => {
    const [a, b] = await Promise.all([submit('dup'), submit('dup')]);
    expect(a).toEqual({ operationId: 'dup' });
    expect(b).toEqual({ operationId: 'dup' });
    expect(await submit('dup')).toEqual({ operationId: 'dup' });
    const fake = await FakeSampler.started(api);
    await fake.takeSample();
    expect((await fake.next(0)).body.requests).toEqual([]);
    await expect(submit('dup', { request: request({ temperature: 0 }) })).rejects.toThrow(IdempotencyConflictError);
    await expect(submit('dup', { request: request({ temperature: 0 }) })).rejects.toThrow(/Idempotency-Key 'dup' was already used for a different sample request/);
    // A key is per sampler: the same key on another sampler is another operation.
    const other = await createSampler(api, alice, { baseModel: TOY });
    expect(await submit('dup', {}, alice, other.id)).toEqual({ operationId: 'dup' });
    expect((await fake.takeSample()).sample).toEqual(request());
  });

  it('refuses a request outside the relay contract with a sentence, queuing nothing', async () => {
    await expect(submit('wide', { request: request({ n: 65 }) })).rejects.toThrow(ValidationError);
    await expect(submit('wide', { request: request({ n: 65 }) })).rejects.toThrow(/^n: Too big: expected number to be <=64$/);
    await expect(submit('topk', { request: request({ prompt_logprobs: 21 }) })).rejects.toThrow(/^prompt_logprobs: /);
    await expect(submit('empty', { request: request({ prompt_tokens: [] }) })).rejects.toThrow(/^prompt_tokens: /);
    expect(await poll('wide')).toBeUndefined();
    expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toEqual([]);
  });

  it("keeps others' samplers and operations out of reach", async () => {
    await submit('mine');
    await expect(submit('theirs', {}, bob)).rejects.toThrow(NotFoundError);
    expect(await poll('mine', 0, bob)).toBeUndefined();
    expect(await sampling().cancel(bob, sampler.id, 'mine')).toBeUndefined();
    const bobs = await createSampler(api, bob, { baseModel: TOY });
    expect(await poll('mine', 0, bob, bobs.id)).toBeUndefined();
    expect(await poll('never-submitted')).toBeUndefined();
    expect(await sampling().cancel(alice, sampler.id, 'never-submitted')).toBeUndefined();
  });

  it('drops a queued sample on cancel, and lets a taken one finish', async () => {
    await submit('queued');
    const fake = await FakeSampler.started(api);
    expect(await sampling().cancel(alice, sampler.id, 'queued')).toBe('cancelled');
    expect(await sampling().cancel(alice, sampler.id, 'queued')).toBe('cancelled');
    expect((await fake.next(0)).body.requests).toEqual([]);
    expect(await poll('queued')).toMatchObject({ status: 'error', errorClass: 'RuntimeError' });

    await submit('taken');
    const taken = await fake.takeSample();
    expect(await sampling().cancel(alice, sampler.id, 'taken')).toBe('running');
    expect((await fake.answerSample(taken)).body).toEqual({ cancelled: false });
    expect(await poll('taken')).toMatchObject({ status: 'done' });
    expect(await sampling().cancel(alice, sampler.id, 'taken')).toBe('running');
  });

  it("ends the operation with the sampler's error, scrubbed of internal paths", async () => {
    await submit('bad');
    const fake = await FakeSampler.started(api);
    const taken = await fake.takeSample();
    await fake.post(taken.id, { seq: 0, error: 'Adapter could not be loaded from file:///data/secret/adapter: bad shape' });
    const view = await poll('bad');
    expect(view).toEqual({ status: 'error', error: 'Adapter could not be loaded from [internal path]: bad shape', errorClass: 'RuntimeError' });
  });

  it('fails a waiting sample with the reason when its sampler job fails, and no later sampler runs it', async () => {
    api.jobs.compute.script = (spec) => (spec.kind === 'sampler' ? { fail: 'The base model does not fit this GPU; use a smaller one.' } : { lines: [] });
    await submit('doomed');
    await expect.poll(async () => poll('doomed'), { timeout: 5000 }).toEqual({
      status: 'error',
      error: 'The base model does not fit this GPU; use a smaller one.',
      errorClass: 'RuntimeError',
    });
    api.jobs.compute.script = () => ({ hold: true });
    await submit('later', { request: request({ seed: 99 }) });
    const fresh = await FakeSampler.started(api, 2);
    expect((await fresh.takeSample()).sample.seed).toBe(99);
    expect((await fresh.next(0)).body.requests).toEqual([]);
  });

  it('starts a new sampler for a waiting sample when the last one stopped idle', async () => {
    await submit('first');
    const fake = await FakeSampler.started(api);
    await fake.answerSample(await fake.takeSample());
    await api.jobs.compute.finish(fake.jobId);
    await expect.poll(async () => (await fake.next()).status).toBe(410);
    // The pool starts the next sampler on submit; stop that one before it takes anything, as an idle one would.
    await submit('second');
    const next = await FakeSampler.started(api, 2);
    await api.jobs.compute.finish(next.jobId);
    const waiting = poll('second', 5000);
    const third = await FakeSampler.started(api, 3);
    await third.answerSample(await third.takeSample());
    expect(await waiting).toMatchObject({ status: 'done' });
  });

  describe('weights', () => {
    it("serves a sampler_weights checkpoint's adapter on the run's base, keyed on the checkpoint's version", async () => {
      const run = await createRun(api, alice, TOY);
      const first = await saveCheckpoint(api, run, 'step-1');
      await submit('pinned', { checkpointPath: first.path });
      const fake = await FakeSampler.started(api);
      const taken = await fake.takeSample();
      expect(taken.model.base_model).toBe(TOY);
      expect(taken.model.adapters).toEqual([
        { model_name: first.path, uri: expect.stringMatching(new RegExp(`^file://.*/training/runs/${run.id}/checkpoints/sampler/step-1/$`)), version: first.createdAt },
      ]);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const again = await saveCheckpoint(api, run, 'step-1');
      await submit('pinned-again', { checkpointPath: again.path });
      const retaken = await fake.takeSample();
      expect(retaken.model.adapters[0]!.uri).toBe(taken.model.adapters[0]!.uri);
      expect(retaken.model.adapters[0]!.version).toBe(again.createdAt);
      expect(again.createdAt).not.toBe(first.createdAt);
    });

    it('notes the use of an ephemeral checkpoint, which holds off its retention', async () => {
      const run = await createRun(api, alice, TOY);
      const published = await saveCheckpoint(api, run, `default-${'a'.repeat(32)}`, { publish: true });
      expect(published.ephemeral).toBe(true);
      const key = keys.trainingCheckpoint(run.id, 'sampler', published.name);
      expect((await api.store.get(key))?.last_sampled_at).toBeUndefined();
      await submit('eph', { checkpointPath: published.path });
      expect((await api.store.get(key))?.last_sampled_at).toEqual(expect.any(Number));
    });

    it('samples the base model for a paired client before its first publish', async () => {
      const run = await createRun(api, alice, TOY);
      const paired = await api.services.training.samplers.createPaired(alice, { sessionId: run.sessionId, runId: run.id });
      await submit('paired', { runId: run.id }, alice, paired.id);
      const taken = await (await FakeSampler.started(api)).takeSample();
      expect(taken.model).toEqual({ base_model: TOY, adapters: [] });
      await expect(submit('wrong-run', { runId: 'r0nope' })).rejects.toThrow(ValidationError);
      await expect(submit('wrong-run', { runId: 'r0nope' })).rejects.toThrow(/is not the run of sampler/);
    });

    it('serves a standalone sampler its model_path checkpoint by default', async () => {
      const run = await createRun(api, alice, TOY);
      const checkpoint = await saveCheckpoint(api, run, 'final');
      const standalone = await createSampler(api, alice, { modelPath: checkpoint.path });
      await submit('default-weights', {}, alice, standalone.id);
      const taken = await (await FakeSampler.started(api)).takeSample();
      expect(taken.model.adapters.map((adapter) => [adapter.model_name, adapter.version])).toEqual([[checkpoint.path, checkpoint.createdAt]]);
    });

    it('refuses training state, another base model and checkpoints the caller cannot read', async () => {
      const run = await createRun(api, alice, TOY);
      const state = await saveCheckpoint(api, run, 'state', { target: 'trainer' });
      await expect(submit('state', { checkpointPath: state.path })).rejects.toThrow(ValidationError);
      await expect(submit('state', { checkpointPath: state.path })).rejects.toThrow(/holds training state/);

      const elsewhere = await saveCheckpoint(api, await createRun(api, alice, OTHER_BASE), 'other-base');
      await expect(submit('base', { checkpointPath: elsewhere.path })).rejects.toThrow(ValidationError);
      await expect(submit('base', { checkpointPath: elsewhere.path })).rejects.toThrow(`was trained on ${OTHER_BASE}, but sampler '${sampler.id}' serves ${TOY}`);

      const bobs = await saveCheckpoint(api, await createRun(api, bob, TOY), 'bobs');
      await expect(submit('bobs', { checkpointPath: bobs.path })).rejects.toThrow(NotFoundError);
      await expect(submit('gone', { checkpointPath: `bt://loops:${run.id}/sampler_weights/missing` })).rejects.toThrow(NotFoundError);
      expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toEqual([]);
    });
  });
});

/**
 * Tinker's ordering and futures contract (loops-api.md §2.4–§2.5) through `app.request`: training
 * operations run in `seq_id` order per model whatever order they arrive in (the SDK sends a
 * batch's first chunk last), a gap waits and then fails with a user error, retries are
 * deduplicated by (model, seq_id), `retrieve_future` holds then answers `try_again`, and results
 * survive a restart (two apps over one Store). Also the service's client-sequence rules directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Actor } from '#core/actor.ts';
import { ValidationError } from '#core/errors.ts';
import { createServices } from '#core/services.ts';
import type { SubmittedOperation } from '#core/training/model.ts';
import { createApp } from '#http/app.ts';
import { systemClock } from '#ports/clock.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { BASE_MODELS, createTestApp, createUserKey, DEFAULT_BASE_MODEL, type TestApp } from '#test/support/app.ts';
import { DATUM, FORWARD_RESULT, TinkerClient } from './tinker-support.ts';

const MODEL = 'bakehouse/toy-instruct';
const ALICE: Actor = { userId: 'alice', isAdmin: false };
const OPTIM: SubmittedOperation = { kind: 'optim_step', adam: { learning_rate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 0 } };

let api: TestApp;
afterEach(() => api.close());

async function setUp(training: { sequenceGapS?: number } = {}, pollHoldMs = 50) {
  api = await createTestApp({ services: { training: { pollMs: 5, ...training } }, tinker: { pollHoldMs } });
  const client = new TinkerClient(api, await createUserKey(api.request, 'alice'));
  const sessionId = await client.createSession();
  const created = await client.ok('create_model', { session_id: sessionId, model_seq_id: 0, base_model: MODEL, lora_config: { rank: 8 } });
  const modelId = created.model_id as string;
  const run = (await api.services.training.runs.findByAlias(ALICE, modelId))!;
  const trainer = await FakeTrainer.forRun(api, run.id);
  await trainer.ready();
  const init = await trainer.take();
  await trainer.post(init.id, { status: 'done', result: { step: 0, lora_rank: 8 } });
  return { client, modelId, runId: run.id, trainer };
}

const chunk = (modelId: string, seq: number, tokens: number[]) => ({
  forward_backward_input: {
    data: [{ ...DATUM, model_input: { chunks: [{ type: 'encoded_text', tokens }] } }],
    loss_fn: 'cross_entropy',
  },
  model_id: modelId,
  seq_id: seq,
});

describe('seq_id order', () => {
  it('runs chunks that arrive first-chunk-last in seq_id order, holding them until the first arrives', async () => {
    const { client, modelId, trainer } = await setUp();
    const second = await client.ok('forward_backward', chunk(modelId, 2, [21, 22, 23]));
    const step = await client.ok('optim_step', { adam_params: {}, model_id: modelId, seq_id: 3 });
    // Nothing runs while seq_id 1 is missing.
    expect((await trainer.next(0.1)).body.operation).toBeNull();
    expect((await client.retrieve(second.request_id)).body).toMatchObject({ type: 'try_again', queue_state: 'active' });
    const first = await client.ok('forward_backward', chunk(modelId, 1, [11, 12, 13]));
    const order = [];
    for (let i = 0; i < 3; i++) {
      const held = await trainer.take();
      order.push(held.operation.kind === 'forward' ? held.operation.data[0]!.tokens[0] : held.operation.kind);
      await trainer.post(held.id, { status: 'done', result: held.operation.kind === 'forward' ? FORWARD_RESULT : { step: 1, learning_rate: 1e-4, grad_norm: 1 } });
    }
    expect(order).toEqual([11, 21, 'optim_step']);
    for (const future of [first, second]) expect((await client.settled(future.request_id)).body.metrics['loss:sum']).toBe(1.5);
    expect((await client.settled(step.request_id)).body.metrics['step:max']).toBe(1);
  });

  it('deduplicates a retry by (model, seq_id), and refuses a different operation under a used seq_id with 400', async () => {
    const { client, modelId, trainer } = await setUp();
    const first = await client.ok('forward_backward', chunk(modelId, 1, [11, 12, 13]), { 'x-idempotency-key': 'stainless-python-retry-a' });
    const retry = await client.ok('forward_backward', chunk(modelId, 1, [11, 12, 13]), { 'x-idempotency-key': 'stainless-python-retry-b' });
    expect(retry.request_id).toBe(first.request_id);
    const clash = await client.call('optim_step', { adam_params: {}, model_id: modelId, seq_id: 1 });
    expect(clash.status).toBe(400);
    expect(clash.body.message).toMatch(/seq_id 1 was already used for a different operation/);
    const held = await trainer.take();
    await trainer.post(held.id, { status: 'done', result: FORWARD_RESULT });
    expect((await trainer.next(0.05)).body.operation).toBeNull();
  });

  it('fails an operation whose predecessor never arrives with a user error after the gap limit', async () => {
    const { client, modelId, trainer } = await setUp({ sequenceGapS: 0.2 });
    const waiting = await client.ok('optim_step', { adam_params: {}, model_id: modelId, seq_id: 2 });
    expect((await client.retrieve(waiting.request_id)).body.type).toBe('try_again');
    await new Promise((resolve) => setTimeout(resolve, 250));
    const failed = await client.settled(waiting.request_id);
    expect(failed.status).toBe(200);
    expect(failed.body).toEqual({ error: expect.stringMatching(/waited more than 0.2 s for sequence number 1, which never arrived/), category: 'user' });
    // The missing one still runs when it comes; the failed one never does.
    await client.ok('forward_backward', chunk(modelId, 1, [11, 12, 13]));
    expect((await trainer.take()).operation.kind).toBe('forward');
  });

  it('fails waiting operations when the model is unloaded', async () => {
    const { client, modelId } = await setUp();
    const waiting = await client.ok('optim_step', { adam_params: {}, model_id: modelId, seq_id: 5 });
    await client.ok('unload_model', { model_id: modelId });
    expect((await client.settled(waiting.request_id)).body).toEqual({ error: expect.stringMatching(/deactivated/), category: 'server' });
  });
});

describe('futures', () => {
  it('holds retrieve_future for the configured time, then answers try_again', async () => {
    const { client, modelId } = await setUp({}, 300);
    const waiting = await client.ok('optim_step', { adam_params: {}, model_id: modelId, seq_id: 1 });
    const started = Date.now();
    const answer = await client.retrieve(waiting.request_id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(answer.body).toEqual({ type: 'try_again', request_id: waiting.request_id, queue_state: 'active' });
  });

  it('keeps results across a restart: another server over the same Store answers a future and a retry', async () => {
    const { client, modelId, trainer } = await setUp();
    const submitted = await client.ok('forward_backward', chunk(modelId, 1, [11, 12, 13]));
    const held = await trainer.take();
    await trainer.post(held.id, { status: 'done', result: FORWARD_RESULT });
    // Delivered once before the restart.
    expect((await client.settled(submitted.request_id)).body.metrics['loss:sum']).toBe(1.5);
    const services = createServices({ store: api.store, ...api.jobs, clock: systemClock, catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL }, training: { pollMs: 5 } });
    const restarted = createApp(services, { tinker: { pollHoldMs: 50 } });
    // The restarted app serves the future again and dedupes the retried submit.
    const viaRestart = await restarted.request('/tinker/api/v1/retrieve_future', {
      method: 'POST',
      headers: { 'x-api-key': `tml-${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ request_id: submitted.request_id }),
    });
    expect(viaRestart.status).toBe(200);
    expect(((await viaRestart.json()) as { metrics: Record<string, number> }).metrics['loss:sum']).toBe(1.5);
    const retry = await restarted.request('/tinker/api/v1/forward_backward', {
      method: 'POST',
      headers: { 'x-api-key': `tml-${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(chunk(modelId, 1, [11, 12, 13])),
    });
    expect(((await retry.json()) as { request_id: string }).request_id).toBe(submitted.request_id);
  });
});

describe('client sequence numbers in the service', () => {
  it('refuses a number below the next expected one under a new key, and one that is not a whole number from 1', async () => {
    const { runId, trainer } = await setUp();
    const { operations } = api.services.training;
    await operations.submitInOrder(ALICE, runId, { idempotencyKey: 'a', operation: OPTIM, clientSeq: 1 });
    await expect(operations.submitInOrder(ALICE, runId, { idempotencyKey: 'b', operation: OPTIM, clientSeq: 1 })).rejects.toThrow(/Sequence number 1 was already used/);
    await expect(operations.submitInOrder(ALICE, runId, { idempotencyKey: 'c', operation: OPTIM, clientSeq: 0 })).rejects.toBeInstanceOf(ValidationError);
    await operations.submitInOrder(ALICE, runId, { idempotencyKey: 'd', operation: OPTIM, clientSeq: 3 });
    await expect(operations.submitInOrder(ALICE, runId, { idempotencyKey: 'e', operation: OPTIM, clientSeq: 3 })).rejects.toThrow(/already used on run .* by another operation/);
    // Unnumbered operations keep acceptance order beside numbered ones.
    await operations.submit(ALICE, runId, { idempotencyKey: 'plain', operation: OPTIM });
    await operations.submitInOrder(ALICE, runId, { idempotencyKey: 'f', operation: OPTIM, clientSeq: 2 });
    const taken = [];
    for (let i = 0; i < 4; i++) {
      const held = await trainer.take();
      taken.push(held.id);
      await trainer.post(held.id, { status: 'done', result: { step: i + 1, learning_rate: 1e-4, grad_norm: 1 } });
    }
    expect(taken).toEqual(['a', 'plain', 'f', 'd']);
  });
});

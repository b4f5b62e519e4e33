/**
 * The Loops data plane (loops-data-plane.md §5–§10) through `app.request`: the trainer at
 * `run.base_url` driven by a fake trainer on the relay, the sampler at `sampler.base_url` by a
 * fake sampler, and the status table of §6.4 that keeps the SDK from retrying permanent errors.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSampler } from '#test/support/fake-sampler.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { actorOf, saveCheckpoint } from '#test/support/training.ts';
import { createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';

const MODEL = 'bakehouse/toy-instruct';

let api: TestApp;
let aliceKey: string;
let bobKey: string;

async function loops(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, key: string | null = aliceKey): Promise<ApiResponse> {
  return api.request(method, path, { body, key: null, headers: { ...(key ? { authorization: `Api-Key ${key}` } : {}), ...headers } });
}

/** A 4xx the SDK raises at once: the Loops error shape with `06` and its code (§3.3). */
function expectRejected(response: ApiResponse, status: number, reason: string, message?: RegExp): void {
  expect({ status: response.status, body: response.body }, response.text).toMatchObject({ status, body: { error: expect.any(String), details: { reason } } });
  expect(response.headers.get('x-baseten-error-source')).toBe('06');
  expect(response.headers.get('x-baseten-error-code')).toBe(reason);
  if (message) expect(response.body.error).toMatch(message);
}

interface Trainer {
  runId: string;
  sessionId: string;
  /** `run.base_url` as a path. */
  T: string;
  engine: FakeTrainer;
}

async function startTrainer(key = aliceKey, count = 1): Promise<Trainer> {
  const sessionId = (await loops('POST', '/v1/loops/sessions', undefined, {}, key)).body.session.id;
  const created = await loops('POST', '/v1/loops/trainers', { session_id: sessionId, base_model: MODEL, lora_rank: 8, replicas: 1, availability_model: 'dedicated' }, {}, key);
  expect(created.status, created.text).toBe(200);
  const runId = created.body.run.id as string;
  const T = new URL(created.body.run.base_url).pathname;
  expect(T).toBe(`/loops/trainers/${runId}`);
  return { runId, sessionId, T, engine: await FakeTrainer.started(api, count) };
}

/** Submits an op as the SDK does (Idempotency-Key, X-Run-Id, the op body's common fields). */
function submit(trainer: Trainer, op: string, body: Record<string, unknown>, key = `k-${op}-${Math.random().toString(16).slice(2)}`) {
  return loops('POST', `${trainer.T}/${op}`, { ...body, run_id: trainer.runId, seq_id: 1, model: MODEL }, { 'idempotency-key': key, 'x-run-id': trainer.runId });
}

const poll = (trainer: Trainer, operationId: string) => loops('GET', `${trainer.T}/operations/${encodeURIComponent(operationId)}`, undefined, { 'x-run-id': trainer.runId });

/** What `forward_backward` sends for one datum (loops-data-plane.md §16). */
const DATUM = {
  model_input: { chunks: [{ type: 'encoded_text', tokens: [11, 12, 13] }] },
  loss_fn_inputs: { target_tokens: { data: [12, 13, 14], dtype: 'int64', shape: [3] }, weights: { data: [0, 1, 1], dtype: 'float32', shape: [3] } },
  routed_experts_ref: null,
};
const fbBody = (extra: Record<string, unknown> = {}) => ({ data: [DATUM], loss_fn: 'cross_entropy', loss_fn_config: null, top_k_logprobs: 0, ...extra });
const FORWARD_RESULT = { loss: 1.25, loss_sum: 2.5, active_tokens: 2, outputs: [{ logprobs: { data: [-0.5, -1, -1.5], dtype: 'float32', shape: [3] } }], metrics: {} };

beforeEach(async () => {
  api = await createTestApp({ loops: { pollHoldMs: 30 } });
  aliceKey = await createUserKey(api.request, 'alice');
  bobKey = await createUserKey(api.request, 'bob');
});
afterEach(() => api.close());

describe('GET /health (§5)', () => {
  it('answers 503 while the trainer starts, 200 once it is ready', async () => {
    const trainer = await startTrainer();
    const starting = await loops('GET', `${trainer.T}/health?base_model=${encodeURIComponent(MODEL)}`, undefined, { 'x-run-id': trainer.runId });
    expect(starting.status).toBe(503);
    expect(starting.body).toEqual({ status: 'starting' });
    expect(starting.headers.get('x-baseten-error-source')).toBeNull();
    expect((await trainer.engine.ready()).status).toBe(200);
    const ready = await loops('GET', `${trainer.T}/health`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ok' });
  });

  it('answers 200 for a trainer scaled to zero after idling: the next operation brings it back, the client never sees an error', async () => {
    const trainer = await startTrainer();
    await trainer.engine.ready();
    await vi.waitFor(() => api.jobs.compute.finish(trainer.engine.jobId));
    const idle = await loops('GET', `${trainer.T}/health`);
    expect({ status: idle.status, body: idle.body }).toEqual({ status: 200, body: { status: 'scaled_to_zero' } });
    expect((await loops('GET', `/v1/loops/deployments/${trainer.runId}`)).body.deployment.status).toEqual({ name: 'SCALED_TO_ZERO' });
    expect((await submit(trainer, 'optim_step', { adam_params: {} })).status).toBe(202);
    expect((await loops('GET', `${trainer.T}/health`)).status).toBe(503);
  });

  it('answers a deactivated run with 410, 06 and run_inactive, so the SDK stops waiting', async () => {
    const trainer = await startTrainer();
    await loops('POST', `/v1/loops/runs/${trainer.runId}/deactivate`);
    expectRejected(await loops('GET', `${trainer.T}/health`), 410, 'run_inactive');
  });

  it("answers a missing key with 401 and another user's run with 404, both with 06", async () => {
    const trainer = await startTrainer();
    expectRejected(await loops('GET', `${trainer.T}/health`, undefined, {}, null), 401, 'unauthorized');
    expectRejected(await loops('GET', `${trainer.T}/health`, undefined, {}, bobKey), 404, 'not_found');
    expect((await loops('GET', `${trainer.T}/health`, undefined, { authorization: `Bearer ${aliceKey}` }, null)).status).toBe(503);
  });
});

describe('async operations (§6)', () => {
  it('accepts a submit with 202, the key as operation_id and a Location to poll; the result comes back done', async () => {
    const trainer = await startTrainer();
    await trainer.engine.ready();
    const accepted = await submit(trainer, 'init_trainer_server', { lora_rank: 8, base_model: MODEL }, 'a'.repeat(32));
    expect(accepted.status, accepted.text).toBe(202);
    expect(accepted.body).toEqual({ operation_id: 'a'.repeat(32), schema_version: 1 });
    expect(accepted.headers.get('location')).toBe(`${trainer.T}/operations/${'a'.repeat(32)}`);

    const held = await trainer.engine.take();
    expect(held.operation).toEqual({ kind: 'init', lora_rank: 8 });
    const pending = await poll(trainer, held.id);
    expect(pending.status).toBe(408);
    expect(pending.headers.get('x-baseten-error-source')).toBeNull();

    await trainer.engine.post(held.id, { status: 'done', result: { step: 0, lora_rank: 8 } });
    const done = await poll(trainer, accepted.body.operation_id);
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ status: 'done', result: { step: 0, lora_rank: 8 } });
  });

  it('runs a retried submit once: the same key returns the same operation', async () => {
    const trainer = await startTrainer();
    const [first, second] = await Promise.all([submit(trainer, 'optim_step', { adam_params: {} }, 'same-key'), submit(trainer, 'optim_step', { adam_params: {} }, 'same-key')]);
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.body.operation_id).toBe(first.body.operation_id);
    const held = await trainer.engine.take();
    await trainer.engine.post(held.id, { status: 'done', result: { step: 1, learning_rate: 1e-4, grad_norm: 0.5 } });
    expect((await trainer.engine.next(0)).body.operation).toBeNull();
  });

  it('answers the same key with another body 409 + idempotency_conflict', async () => {
    const trainer = await startTrainer();
    await submit(trainer, 'optim_step', { adam_params: { learning_rate: 0.1 } }, 'k1');
    expectRejected(await submit(trainer, 'optim_step', { adam_params: { learning_rate: 0.2 } }, 'k1'), 409, 'idempotency_conflict');
  });

  it('reports an operation that failed as 200 status error with its class', async () => {
    const trainer = await startTrainer();
    const accepted = await submit(trainer, 'init_trainer_server', { lora_rank: 8 });
    const held = await trainer.engine.take();
    await trainer.engine.post(held.id, { status: 'error', error: 'lora_rank 8 differs from the run.', error_class: 'ValueError' });
    expect((await poll(trainer, accepted.body.operation_id)).body).toEqual({ status: 'error', error: 'lora_rank 8 differs from the run.', error_class: 'ValueError' });
  });

  it("answers an unknown operation, or another user's, with 404 (final for the SDK)", async () => {
    const trainer = await startTrainer();
    const unknown = await poll(trainer, 'no-such-op');
    expectRejected(unknown, 404, 'not_found', /unknown or its result has expired/);
    const accepted = await submit(trainer, 'optim_step', { adam_params: {} });
    expectRejected(await loops('GET', `${trainer.T}/operations/${accepted.body.operation_id}`, undefined, {}, bobKey), 404, 'not_found');
  });
});

describe('trainer routes (§7–§8)', () => {
  it('forward_backward: the trainer gets flat tensors and deferred normalisation; the SDK gets ForwardBackwardOutput', async () => {
    const trainer = await startTrainer();
    const nested = { ...DATUM, loss_fn_inputs: { target_tokens: { data: [[12], [13], [14]], dtype: 'int64', shape: [3, 1] }, weights: { data: [[0], [1], [1]], dtype: 'float32', shape: [3, 1] } } };
    const accepted = await submit(trainer, 'forward_backward', fbBody({ data: [nested] }));
    expect(accepted.status, accepted.text).toBe(202);
    const held = await trainer.engine.take();
    expect(held.operation).toEqual({
      kind: 'forward',
      backward: true,
      data: [{ tokens: [11, 12, 13], loss_fn_inputs: { target_tokens: { data: [12, 13, 14], dtype: 'int64', shape: [3, 1] }, weights: { data: [0, 1, 1], dtype: 'float32', shape: [3, 1] } } }],
      loss_fn: 'cross_entropy',
      loss_fn_config: null,
      normalization: 'token_mean_deferred',
      top_k_logprobs: 0,
    });
    await trainer.engine.post(held.id, { status: 'done', result: FORWARD_RESULT });
    expect((await poll(trainer, accepted.body.operation_id)).body).toEqual({
      status: 'done',
      result: { loss: 1.25, loss_fn_output_type: 'ArrayRecord', loss_fn_outputs: FORWARD_RESULT.outputs, metrics: { loss: 1.25 } },
    });
  });

  it('forward with skip_token_normalization sums and echoes the flag in metrics', async () => {
    const trainer = await startTrainer();
    const accepted = await submit(trainer, 'forward', fbBody({ loss_fn_config: { skip_token_normalization: true } }));
    const held = await trainer.engine.take();
    expect(held.operation).toMatchObject({ kind: 'forward', backward: false, normalization: 'sum', loss_fn_config: {} });
    await trainer.engine.post(held.id, { status: 'done', result: { ...FORWARD_RESULT, loss: 2.5 } });
    expect((await poll(trainer, accepted.body.operation_id)).body.result.metrics).toEqual({ loss: 2.5, skip_token_normalization: 1.0 });
  });

  it('optim_step fills AdamParams defaults (grad_clip_norm 1.0) and reports step, learning_rate, lr and grad_norm', async () => {
    const trainer = await startTrainer();
    const accepted = await submit(trainer, 'optim_step', { adam_params: { learning_rate: 0.001 } });
    const held = await trainer.engine.take();
    expect(held.operation).toEqual({ kind: 'optim_step', adam: { learning_rate: 0.001, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 1.0 } });
    await trainer.engine.post(held.id, { status: 'done', result: { step: 1, learning_rate: 0.001, grad_norm: 0.8 } });
    expect((await poll(trainer, accepted.body.operation_id)).body.result).toEqual({ metrics: { step: 1, learning_rate: 0.001, lr: 0.001, grad_norm: 0.8 } });
  });

  it('save_state and save_weights_for_sampler answer their bt:// paths, and the checkpoints are listed', async () => {
    const trainer = await startTrainer();
    const state = await submit(trainer, 'save_state', { name: 's3', ttl_seconds: null });
    await trainer.engine.answerSave(await trainer.engine.take(), 3);
    expect((await poll(trainer, state.body.operation_id)).body).toEqual({ status: 'done', result: { mode: '', path: `bt://loops:${trainer.runId}/weights/s3` } });

    const published = await submit(trainer, 'save_weights_for_sampler', { name: `s3-${'0'.repeat(32)}`, bump_version: true });
    const held = await trainer.engine.take();
    expect(held.operation).toMatchObject({ kind: 'save', what: 'sampler', publish: true });
    await trainer.engine.answerSave(held, 3);
    expect((await poll(trainer, published.body.operation_id)).body.result).toEqual({ version: 3, path: `bt://loops:${trainer.runId}/sampler_weights/s3-${'0'.repeat(32)}` });

    const listed = await loops('GET', `/v1/loops/checkpoints?run_id=${trainer.runId}`);
    expect(listed.body.checkpoints.map((checkpoint: { target: string; checkpoint_id: string }) => `${checkpoint.target}:${checkpoint.checkpoint_id}`).sort()).toEqual([
      `sampler:s3-${'0'.repeat(32)}`,
      'trainer:s3',
    ]);
  });

  it('load_state_with_optimizer loads a saved state and reports its step', async () => {
    const trainer = await startTrainer();
    const state = await submit(trainer, 'save_state', { name: 'resume' });
    await trainer.engine.answerSave(await trainer.engine.take(), 5);
    await poll(trainer, state.body.operation_id);
    const load = await submit(trainer, 'load_state_with_optimizer', { path: `bt://loops:${trainer.runId}/weights/resume` });
    expect(load.status, load.text).toBe(202);
    const held = await trainer.engine.take();
    expect(held.operation).toMatchObject({ kind: 'load', with_optimizer: true });
    await trainer.engine.post(held.id, { status: 'done', result: { step: 5 } });
    expect((await poll(trainer, load.body.operation_id)).body.result).toEqual({ step: 5 });
  });
});

describe('status codes of a submit (§6.4): permanent errors are never a plain 400, 404 or 408', () => {
  const cases: [string, string, unknown, Record<string, string>, number, string, RegExp][] = [
    ['malformed JSON', 'forward_backward', '{"data": [', {}, 422, 'invalid_request', /not valid JSON/],
    ['a missing field', 'init_trainer_server', {}, {}, 422, 'invalid_request', /lora_rank/],
    ['an unknown loss', 'forward_backward', fbBody({ loss_fn: 'hinge' }), {}, 422, 'invalid_request', /'hinge' is not a loss/],
    ['dppo', 'forward_backward', fbBody({ loss_fn: 'dppo' }), {}, 422, 'invalid_request', /dppo is not supported/],
    ['a shape that does not fit its data', 'forward_backward', fbBody({ data: [{ ...DATUM, loss_fn_inputs: { target_tokens: { data: [12, 13], dtype: 'int64', shape: [3] } } }] }), {}, 422, 'invalid_request', /shape \[3\] holds 3 values/],
    ['top_k_logprobs over 20', 'forward_backward', fbBody({ top_k_logprobs: 21 }), {}, 422, 'invalid_request', /top_k_logprobs/],
    ['a negative target token', 'forward_backward', fbBody({ data: [{ ...DATUM, loss_fn_inputs: { target_tokens: { data: [-100, 13, 14], dtype: 'int64', shape: [3] } } }] }), {}, 422, 'invalid_request', /weight 0/],
    ['routed experts', 'forward_backward', fbBody({ data: [{ ...DATUM, routed_experts_ref: { uri: 'bt://loops:x/sequences/y', version: 1 } }] }), {}, 422, 'invalid_request', /routed_experts_ref/],
    ['an image chunk', 'forward_backward', fbBody({ data: [{ ...DATUM, model_input: { chunks: [{ type: 'image', data: 'aGk=', format: 'png', expected_tokens: 3 }] } }] }), {}, 422, 'invalid_request', /image/],
    ['a body naming another run', 'optim_step', { adam_params: {}, run_id: 'other12' }, {}, 422, 'invalid_request', /names run 'other12'/],
    ['an X-Run-Id naming another run', 'optim_step', { adam_params: {} }, { 'x-run-id': 'other12' }, 422, 'invalid_request', /X-Run-Id names run 'other12'/],
    ['a checkpoint name with a slash', 'save_state', { name: 'a/b' }, {}, 422, 'invalid_request', /name/],
    ['a load of a path that is not a checkpoint', 'load_state', { path: 's3://bucket/x' }, {}, 422, 'invalid_request', /not a checkpoint path/],
  ];

  it.each(cases)('%s → %i + 06', async (_name, op, body, headers, status, reason, message) => {
    const trainer = await startTrainer();
    const sent = typeof body === 'string' ? body : { run_id: trainer.runId, ...(body as object) };
    const response = await loops('POST', `${trainer.T}/${op}`, sent, { 'idempotency-key': 'k', 'content-type': 'application/json', ...headers });
    expectRejected(response, status, reason, message);
  });

  it('a missing key → 401, a run not visible to the key → 404, a deactivated run → 410, all with 06', async () => {
    const trainer = await startTrainer();
    expectRejected(await loops('POST', `${trainer.T}/optim_step`, { adam_params: {} }, {}, null), 401, 'unauthorized');
    expectRejected(await loops('POST', `${trainer.T}/optim_step`, { adam_params: {} }, {}, bobKey), 404, 'not_found');
    expectRejected(await loops('POST', '/loops/trainers/nope123/optim_step', { adam_params: {} }), 404, 'not_found');
    await loops('POST', `/v1/loops/runs/${trainer.runId}/deactivate`);
    expectRejected(await submit(trainer, 'optim_step', { adam_params: {} }), 410, 'run_inactive');
  });

  it('takes bodies past the API’s 8 MiB limit, and refuses ones past 26 MiB with 413 + payload_too_large', async () => {
    const trainer = await startTrainer();
    const tokens = Array.from({ length: 1_500_000 }, (_, index) => index % 1000);
    const big = { data: [{ model_input: { chunks: [{ type: 'encoded_text', tokens }] }, loss_fn_inputs: { target_tokens: { data: tokens, dtype: 'int64', shape: [tokens.length] } }, routed_experts_ref: null }], loss_fn: 'cross_entropy' };
    const accepted = await submit(trainer, 'forward_backward', big);
    expect(JSON.stringify(big).length).toBeGreaterThan(8 * 1024 * 1024);
    expect(accepted.status, accepted.text.slice(0, 200)).toBe(202);
    const tooBig = await loops('POST', `${trainer.T}/forward_backward`, `{"data": "${'x'.repeat(27 * 1024 * 1024)}"}`, { 'content-type': 'application/json' });
    expectRejected(tooBig, 413, 'payload_too_large');
  });
});

describe('sampler /sample, serverless flavour (§9–§10)', () => {
  async function pairedSampler() {
    const trainer = await startTrainer();
    const created = await loops('POST', '/v1/loops/samplers', { session_id: trainer.sessionId, run_id: trainer.runId });
    const S = new URL(created.body.sampler.base_url).pathname;
    const saved = await saveCheckpoint(api, await api.services.training.runs.get(actorOf('alice'), trainer.runId), `step-${'0'.repeat(32)}`, { publish: true });
    return { trainer, samplerId: created.body.sampler.id as string, S, path: saved.path };
  }

  const sampleBody = (extra: Record<string, unknown> = {}) => ({ prompt: [1, 2, 3], n: 2, temperature: 1.0, top_p: 1.0, logprobs: 0, return_tokens_as_token_ids: true, max_tokens: 4, model: MODEL, ...extra });

  it('samples the pinned adapter: 202, then the completions JSON on the poll', async () => {
    const { trainer, S, path } = await pairedSampler();
    const key = '7d2b6c1e-0000-4000-8000-000000000001';
    const accepted = await loops('POST', `${S}/sample`, sampleBody({ lora: path }), { 'idempotency-key': key, 'x-run-id': trainer.runId, 'x-checkpoint-path': path });
    expect(accepted.status, accepted.text).toBe(202);
    expect(accepted.body).toEqual({ operation_id: key, schema_version: 1 });
    expect(accepted.headers.get('location')).toBe(`${S}/operations/${key}`);

    const sampler = await FakeSampler.started(api);
    const request = await sampler.takeSample();
    expect(request.model.adapters.at(-1)?.model_name).toBe(path);
    expect(request.sample).toMatchObject({ prompt_tokens: [1, 2, 3], n: 2, max_tokens: 4, top_k: 0, prompt_logprobs: null });
    expect((await loops('GET', `${S}/operations/${key}`)).status).toBe(408);
    await sampler.answerSample(request);
    const done = await loops('GET', `${S}/operations/${key}`);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({
      status: 'done',
      result: {
        id: `cmpl-${key}`,
        object: 'text_completion',
        model: MODEL,
        choices: [
          { index: 0, token_ids: [3, 2, 1], logprobs: { token_logprobs: [-0.5, -0.5, -0.5] }, finish_reason: 'stop', prompt_token_ids: [1, 2, 3] },
          { index: 1, token_ids: [3, 2, 1], finish_reason: 'stop' },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 },
      },
    });
  });

  it('samples the base model for a paired client before its first publish, with prompt log-probs when asked', async () => {
    const { trainer, S } = await pairedSampler();
    const accepted = await loops('POST', `${S}/sample`, sampleBody({ n: 1, max_tokens: 1, temperature: 0, prompt_logprobs: 0 }), { 'idempotency-key': 'cl-1', 'x-run-id': trainer.runId });
    expect(accepted.status, accepted.text).toBe(202);
    const sampler = await FakeSampler.started(api);
    const request = await sampler.takeSample();
    expect(request.model.adapters).toEqual([]);
    expect(request.sample.prompt_logprobs).toBe(0);
    await sampler.answerSample(request, { prompt_logprobs: [null, -2, -3] });
    const done = await loops('GET', `${S}/operations/cl-1`);
    expect(done.body.result.choices[0].prompt_logprobs).toEqual([null, { '2': { logprob: -2 } }, { '3': { logprob: -3 } }]);

    // With top-k, the SDK reads each entry's keys in order as the ranking.
    await loops('POST', `${S}/sample`, sampleBody({ n: 1, max_tokens: 1, prompt_logprobs: 2 }), { 'idempotency-key': 'cl-2', 'x-run-id': trainer.runId });
    const ranked = await sampler.takeSample();
    expect(ranked.sample.prompt_logprobs).toBe(2);
    await sampler.answerSample(ranked, {
      prompt_logprobs: [null, -2, -3],
      topk_prompt_logprobs: [
        null,
        [
          [9, -0.1],
          [2, -2],
        ],
        [
          [8, -0.2],
          [4, -1],
        ],
      ],
    });
    const top = await loops('GET', `${S}/operations/cl-2`);
    expect(top.text).toContain('"prompt_logprobs":[null,{"9":{"logprob":-0.1,"rank":1},"2":{"logprob":-2,"rank":2}},{"8":{"logprob":-0.2,"rank":1},"4":{"logprob":-1,"rank":2},"3":{"logprob":-3}}]');
  });

  it('refuses routing that disagrees with the path, and bad bodies, with 422 + 06; an unknown checkpoint with 404 + 06', async () => {
    const { trainer, samplerId, S, path } = await pairedSampler();
    const headers = { 'idempotency-key': 'k' };
    expectRejected(await loops('POST', `${S}/sample`, sampleBody(), { ...headers, 'x-sampler-id': 'other12' }), 422, 'invalid_request', /X-Sampler-Id/);
    expectRejected(await loops('POST', `${S}/sample`, sampleBody({ lora: `${path}x` }), { ...headers, 'x-checkpoint-path': path }), 422, 'invalid_request', /different checkpoints/);
    expectRejected(await loops('POST', `${S}/sample`, sampleBody(), { ...headers, 'x-run-id': 'other12' }), 422, 'invalid_request');
    expectRejected(await loops('POST', `${S}/sample`, sampleBody({ model_input_chunks: [{ type: 'image' }], prompt: [1] }), headers), 422, 'invalid_request', /image prompts/);
    expectRejected(await loops('POST', `${S}/sample`, sampleBody({ prompt: [] }), headers), 422, 'invalid_request', /prompt/);
    const state = await saveCheckpoint(api, await api.services.training.runs.get(actorOf('alice'), trainer.runId), 'state', { target: 'trainer' });
    expectRejected(await loops('POST', `${S}/sample`, sampleBody(), { ...headers, 'x-checkpoint-path': state.path }), 422, 'invalid_request', /training state/);
    expectRejected(await loops('POST', `${S}/sample`, sampleBody(), { ...headers, 'x-checkpoint-path': `bt://loops:${trainer.runId}/sampler_weights/none` }), 404, 'not_found');
    expectRejected(await loops('POST', `${S}/sample`, sampleBody(), headers, bobKey), 404, 'not_found');
    expectRejected(await loops('POST', '/loops/samplers/nope123/sample', sampleBody(), headers), 404, 'not_found');
    expect(samplerId).toBeTruthy();
  });

  it('runs a retried sample once, and refuses its key for another request (409 + 06)', async () => {
    const { S } = await pairedSampler();
    const first = await loops('POST', `${S}/sample`, sampleBody(), { 'idempotency-key': 'retried' });
    const again = await loops('POST', `${S}/sample`, sampleBody(), { 'idempotency-key': 'retried' });
    expect([first.status, again.status]).toEqual([202, 202]);
    expect(again.body.operation_id).toBe(first.body.operation_id);
    expectRejected(await loops('POST', `${S}/sample`, sampleBody({ n: 1 }), { 'idempotency-key': 'retried' }), 409, 'idempotency_conflict');
  });

  it('cancels a queued sample (200), refuses to cancel a running one (409 + 06), and 404s an unknown one', async () => {
    const { S } = await pairedSampler();
    await loops('POST', `${S}/sample`, sampleBody(), { 'idempotency-key': 'queued' });
    const cancelled = await loops('POST', `${S}/operations/queued/cancel`);
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body).toEqual({ status: 'cancelled' });
    await loops('POST', `${S}/sample`, sampleBody(), { 'idempotency-key': 'running' });
    const sampler = await FakeSampler.started(api);
    await sampler.takeSample();
    expectRejected(await loops('POST', `${S}/operations/running/cancel`), 409, 'conflict', /already running/);
    expectRejected(await loops('POST', `${S}/operations/unknown/cancel`), 404, 'not_found');
  });

  it('lists the base model and the run’s sampler adapters at /v1/models', async () => {
    const { S, path } = await pairedSampler();
    const models = await loops('GET', `${S}/v1/models`);
    expect(models.status).toBe(200);
    expect(models.body.data.map((model: { id: string; parent: string | null }) => [model.id, model.parent])).toEqual([
      [MODEL, null],
      [path, MODEL],
    ]);
  });
});

/**
 * A run's loss per step (functions/core/training/run-metrics.ts) and its Bakehouse route
 * `GET /v1/loops/runs/{run_id}/metrics`: a fake trainer answers forward_backward and optim_step
 * through the relay routes, and the rows say what the engine's results add up to.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Actor } from '#core/actor.ts';
import type { SubmittedOperation } from '#core/training/model.ts';
import type { TrainingRun } from '#core/training/model.ts';
import { createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { actorOf, createRun } from '#test/support/training.ts';

const MODEL = 'bakehouse/toy-instruct';
const ADAM = { learning_rate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 };
const OPTIM: SubmittedOperation = { kind: 'optim_step', adam: ADAM };
const forward = (backward: boolean, normalization: 'sum' | 'token_mean_deferred' = 'token_mean_deferred'): SubmittedOperation => ({
  kind: 'forward',
  backward,
  data: [{ tokens: [1, 2, 3], loss_fn_inputs: { target_tokens: { data: [2, 3, 4], dtype: 'int64', shape: [3] } } }],
  loss_fn: 'cross_entropy',
  loss_fn_config: null,
  normalization,
  top_k_logprobs: 0,
});

let api: TestApp;
let alice: Actor;
let aliceKey: string;
let bobKey: string;

beforeEach(async () => {
  api = await createTestApp({ services: { training: { pollMs: 5 } } });
  aliceKey = await createUserKey(api.request, 'alice');
  bobKey = await createUserKey(api.request, 'bob');
  alice = actorOf('alice');
});
afterEach(() => api.close());

function metrics(runId: string, query = '', key = aliceKey): Promise<ApiResponse> {
  return api.request('GET', `/v1/loops/runs/${runId}/metrics${query}`, { key: null, headers: { authorization: `Api-Key ${key}` } });
}

/** A run whose fake trainer is ready, and a way to run one operation through it with the given result. */
async function trainedRun(): Promise<{ run: TrainingRun; apply: (operation: SubmittedOperation, result: Record<string, unknown>) => Promise<void> }> {
  const run = await createRun(api, alice, MODEL);
  const trainer = await FakeTrainer.forRun(api, run.id);
  expect((await trainer.ready()).status).toBe(200);
  let key = 0;
  const apply = async (operation: SubmittedOperation, result: Record<string, unknown>) => {
    const id = `op-${++key}`;
    await api.services.training.operations.submit(alice, run.id, { idempotencyKey: id, operation });
    const held = await trainer.take();
    expect(held.id).toBe(id);
    expect((await trainer.post(id, { status: 'done', result })).status).toBe(200);
  };
  return { run, apply };
}

/** A forward's result as the engine reports it: `loss` per the normalization, `loss_sum` and `active_tokens` always. */
const forwardResult = (lossSum: number, activeTokens: number, normalization: 'sum' | 'token_mean_deferred' = 'token_mean_deferred') => ({
  loss: normalization === 'sum' ? lossSum : lossSum / activeTokens,
  loss_sum: lossSum,
  active_tokens: activeTokens,
  outputs: [],
  metrics: {},
});
const stepResult = (step: number, gradNorm = 0.5) => ({ step, learning_rate: 1e-4, grad_norm: gradNorm });

describe('loss per step', () => {
  it('records the token-weighted mean of the forward_backward losses since the previous step, whatever their normalization', async () => {
    const { run, apply } = await trainedRun();
    await apply(forward(true), forwardResult(6, 3));
    await apply(forward(true, 'sum'), forwardResult(4, 1, 'sum'));
    // A forward without backward computes a loss but adds no gradient: it is not the step's.
    await apply(forward(false), forwardResult(100, 1));
    await apply(OPTIM, stepResult(1, 0.25));
    await apply(forward(true), forwardResult(3, 3));
    await apply(OPTIM, stepResult(2));

    const response = await metrics(run.id);
    expect(response.status, response.text).toBe(200);
    expect(response.body).toEqual({
      metrics: [
        // (6 + 4) / (3 + 1): neither the mean of the calls' losses (3) nor their sum over the tokens (1.5).
        { step: 1, loss: 2.5, learning_rate: 1e-4, grad_norm: 0.25, tokens: 4, time: expect.any(String) },
        { step: 2, loss: 1, learning_rate: 1e-4, grad_norm: 0.5, tokens: 3, time: expect.any(String) },
      ],
      next_page_token: null,
    });
  });

  it('counts a result the trainer posts twice once, and forgets the pending loss at init and load', async () => {
    const { run, apply } = await trainedRun();
    const trainer = await FakeTrainer.forRun(api, run.id);
    await apply(forward(true), forwardResult(4, 2));
    expect((await trainer.post('op-1', { status: 'done', result: forwardResult(4, 2) })).status).toBe(200);
    await apply(OPTIM, stepResult(1));
    await apply(forward(true), forwardResult(50, 5));
    await apply({ kind: 'init', lora_rank: 8 }, { step: 0, lora_rank: 8 });
    await apply(OPTIM, stepResult(1, 0));

    const rows = (await metrics(run.id)).body.metrics;
    expect(rows.map((row: { step: number; loss: number | null; tokens: number }) => [row.step, row.loss, row.tokens])).toEqual([
      [1, 2, 2],
      // Same step number again after init: both rows stay, in the order they ran; no tokens, no loss.
      [1, null, 0],
    ]);
  });

  it('pages through the steps with next_page_token', async () => {
    const { run, apply } = await trainedRun();
    for (let step = 1; step <= 5; step++) {
      await apply(forward(true), forwardResult(step, 1));
      await apply(OPTIM, stepResult(step));
    }
    const seen: number[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const response: ApiResponse = await metrics(run.id, `?page_size=2${token ? `&page_token=${token}` : ''}`);
      expect(response.status, response.text).toBe(200);
      expect(response.body.metrics.length).toBeLessThanOrEqual(2);
      seen.push(...response.body.metrics.map((row: { loss: number }) => row.loss));
      token = response.body.next_page_token;
      pages++;
    } while (token);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it('answers a run with no steps yet with an empty page', async () => {
    const run = await createRun(api, alice, MODEL);
    expect((await metrics(run.id)).body).toEqual({ metrics: [], next_page_token: null });
  });
});

describe('errors', () => {
  it("answers 404 in the Loops shape for another user's run and an unknown one", async () => {
    const run = await createRun(api, alice, MODEL);
    for (const response of [await metrics(run.id, '', bobKey), await metrics('nope')]) {
      expect(response.status).toBe(404);
      expect(response.body).toMatchObject({ error: expect.stringMatching(/not found/), details: { reason: 'not_found' } });
    }
  });

  it("answers 400 to a page token of another run's metrics, a malformed one, and a page size out of range", async () => {
    const { run, apply } = await trainedRun();
    for (let step = 1; step <= 2; step++) await apply(OPTIM, stepResult(step));
    const other = await createRun(api, alice, MODEL);
    const token = (await metrics(run.id, '?page_size=1')).body.next_page_token as string;
    expect(token).toEqual(expect.any(String));
    for (const response of [await metrics(other.id, `?page_token=${token}`), await metrics(run.id, '?page_token=garbage')]) {
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: expect.stringMatching(/page_token/), details: { reason: 'invalid_request' } });
      expect(response.text).not.toMatch(/\/work\/|\.ts:\d|at \w+ \(/);
    }
    expect((await metrics(run.id, '?page_size=0')).status).toBe(400);
    expect((await metrics(run.id, '?page_size=1001')).status).toBe(400);
  });

  it('is documented in the OpenAPI document as a Bakehouse extension', async () => {
    const document = (await api.request('GET', '/openapi.json')).body;
    const operation = document.paths['/v1/loops/runs/{run_id}/metrics'].get;
    expect(operation.summary).toMatch(/Bakehouse extension/);
    expect(Object.keys(operation.responses).sort()).toEqual(['200', '400', '401', '404']);
  });
});

/**
 * Backpressure on a base model's sampler inbox (functions/core/chat/chat-relay.ts): past
 * `samplerMaxQueued` waiting requests, sampling and chat are refused with a retry-after, answered
 * as each front's clients wait it out — the Loops `/sample` 503 with Retry-After
 * (loops-data-plane.md §9.4), Tinker's `asample` 429 (loops-api.md §2.10) and chat's 429
 * (bread-api.md §1.4, §1.6).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RateLimitedError } from '#core/errors.ts';
import type { TrainingSampler } from '#core/training/model.ts';
import type { SampleRequest } from '#schemas/relay.ts';
import { createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';
import { FakeSampler } from '#test/support/fake-sampler.ts';
import { RELAY_URL, actorOf, createSampler } from '#test/support/training.ts';
import { TinkerClient } from './tinker-support.ts';

const TOY = 'bakehouse/toy-instruct';
const MAX_QUEUED = 2;
const alice = actorOf('alice');
const FULL = new RegExp(`^${MAX_QUEUED} requests are already waiting for the ${TOY} sampler; retry in 5 s\\.$`);

const request: SampleRequest = {
  prompt_tokens: [1, 2, 3],
  n: 1,
  temperature: 1,
  top_p: 1,
  top_k: 0,
  max_tokens: 4,
  seed: null,
  stop: [],
  stop_token_ids: [],
  prompt_logprobs: null,
};

let api: TestApp;
let sampler: TrainingSampler;
let aliceKey: string;

const submit = (key: string) =>
  api.services.training.sampling.submit(alice, sampler.id, { idempotencyKey: key, checkpointPath: null, runId: null, request, relayUrl: RELAY_URL });

/** Fills the toy model's inbox up to its limit. */
async function fillInbox(): Promise<void> {
  for (let i = 0; i < MAX_QUEUED; i++) await submit(`waiting-${i}`);
}

function expectRetryAfter(response: ApiResponse, status: number): void {
  expect(response.status, response.text).toBe(status);
  expect(response.headers.get('retry-after')).toBe('5');
}

beforeEach(async () => {
  api = await createTestApp({ services: { samplerMaxQueued: MAX_QUEUED, chatTiming: { pollMs: 2, livenessMs: 20 } } });
  sampler = await createSampler(api, alice, { baseModel: TOY });
  aliceKey = await createUserKey(api.request, 'alice');
});
afterEach(() => api.close());

describe('the sampling service', () => {
  it('refuses a new sample while the inbox is full, with a retry-after, and takes it once a sampler has taken requests', async () => {
    await fillInbox();
    const refused = await submit('one-too-many').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused).toMatchObject({ retryAfterS: 5, retryable: true, message: expect.stringMatching(FULL) });

    // A retried submit of a request already queued is the same operation, not a new one.
    expect(await submit('waiting-0')).toEqual({ operationId: 'waiting-0' });

    const fake = await FakeSampler.started(api);
    await fake.takeSample();
    expect(await submit('one-too-many')).toEqual({ operationId: 'one-too-many' });
    await expect(submit('and-another')).rejects.toBeInstanceOf(RateLimitedError);
  });

  it('counts each base model on its own', async () => {
    await fillInbox();
    const other = await createSampler(api, alice, { baseModel: 'Qwen/Qwen3-8B' });
    const submitted = await api.services.training.sampling.submit(alice, other.id, { idempotencyKey: 'other', checkpointPath: null, runId: null, request, relayUrl: RELAY_URL });
    expect(submitted).toEqual({ operationId: 'other' });
  });
});

describe('the fronts', () => {
  it('Loops /sample answers 503 with Retry-After, which the SDK waits out and retries', async () => {
    await fillInbox();
    const body = { prompt: [1, 2, 3], n: 1, temperature: 1.0, top_p: 1.0, logprobs: 0, return_tokens_as_token_ids: true, max_tokens: 4, model: TOY };
    const response = await api.request('POST', `/loops/samplers/${sampler.id}/sample`, { body, key: null, headers: { authorization: `Api-Key ${aliceKey}`, 'idempotency-key': 'loops-1' } });
    expectRetryAfter(response, 503);
    expect(response.body).toMatchObject({ error: expect.stringMatching(FULL), details: { reason: 'rate_limited' } });
    // Not marked as the server's own 4xx: the SDK would raise that at once.
    expect(response.headers.get('x-baseten-error-source')).toBeNull();
  });

  it("Tinker asample answers 429 with retry-after, on which the client backs off and resubmits", async () => {
    await fillInbox();
    const tinker = new TinkerClient(api, aliceKey);
    const sessionId = await tinker.createSession();
    const session = await tinker.ok('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, base_model: TOY, type: 'create_sampling_session' });
    const response = await tinker.call(
      'asample',
      {
        num_samples: 1,
        prompt: { chunks: [{ type: 'encoded_text', tokens: [5, 6, 7] }] },
        sampling_params: { max_tokens: 8, temperature: 1, top_k: -1, top_p: 1, stop: null },
        sampling_session_id: session.sampling_session_id,
        seq_id: 0,
        prompt_logprobs: false,
        topk_prompt_logprobs: 0,
        type: 'sample',
      },
      { 'x-tinker-sampling-backpressure': '1' },
    );
    expectRetryAfter(response, 429);
    expect(response.headers.get('x-should-retry')).toBe('true');
    expect(response.body).toMatchObject({ message: expect.stringMatching(FULL), code: 'RATE_LIMITED' });
  });

  it('chat answers 429 with retry-after in the OpenAI error shape', async () => {
    await fillInbox();
    const response = await api.request('POST', '/v1/chat/completions', { body: { model: TOY, messages: [{ role: 'user', content: 'hello' }] }, key: aliceKey });
    expectRetryAfter(response, 429);
    expect(response.headers.get('x-should-retry')).toBe('true');
    expect(response.body).toEqual({ error: { message: expect.stringMatching(FULL), type: 'invalid_request_error', code: 'rate_limited', param: null } });
  });
});

/**
 * A Tinker client for API tests: requests to `/tinker/api/v1/*` through `app.request` the way the
 * tinker SDK makes them (`X-API-Key: tml-<key>`, JSON bodies, `retrieve_future` polls).
 */
import { expect, vi } from 'vitest';
import type { ApiResponse, TestApp } from '#test/support/app.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';

export const TINKER_API = '/tinker/api/v1';
const MODEL = 'bakehouse/toy-instruct';

/** One datum of a supervised example: position i of the input predicts target i. */
export const DATUM = {
  model_input: { chunks: [{ type: 'encoded_text', tokens: [11, 12, 13] }] },
  loss_fn_inputs: { target_tokens: { data: [12, 13, 14], dtype: 'int64', shape: [3] }, weights: { data: [0, 1, 1], dtype: 'float32', shape: [3] } },
};

/** A forward result as the trainer engine answers one datum. */
export const FORWARD_RESULT = {
  loss: 1.5,
  loss_sum: 1.5,
  active_tokens: 2,
  outputs: [{ logprobs: { data: [-0.1, -0.5, -1], dtype: 'float32', shape: [3] } }],
  metrics: { clip_fraction: 0.25 },
};

export class TinkerClient {
  constructor(
    private readonly api: Pick<TestApp, 'request' | 'app'>,
    readonly key: string,
  ) {}

  call(path: string, body?: unknown, headers: Record<string, string> = {}, method = body === undefined ? 'GET' : 'POST'): Promise<ApiResponse> {
    return this.api.request(method, `${TINKER_API}/${path}`, { body, key: null, headers: { 'x-api-key': `tml-${this.key}`, ...headers } });
  }

  /** Answers the call's JSON body, failing the test on any status but 200. */
  async ok(path: string, body?: unknown, headers: Record<string, string> = {}) {
    const response = await this.call(path, body, headers);
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  async createSession(): Promise<string> {
    return (await this.ok('create_session', { tags: [], user_metadata: {}, sdk_version: '0.38.0', type: 'create_session' })).session_id as string;
  }

  retrieve(requestId: string, accept = 'application/json'): Promise<ApiResponse> {
    return this.call('retrieve_future', { request_id: requestId, allow_metadata_only: false }, { accept });
  }

  /** A retrieve answered as protobuf (what the SDK asks for forward/backward and sample results): the status, type and bytes. */
  async retrieveProtobuf(requestId: string): Promise<{ status: number; contentType: string | null; bytes: Uint8Array }> {
    const response = await this.api.app.request(`${TINKER_API}/retrieve_future`, {
      method: 'POST',
      headers: { 'x-api-key': `tml-${this.key}`, 'content-type': 'application/json', accept: 'application/x-protobuf' },
      body: JSON.stringify({ request_id: requestId, allow_metadata_only: false }),
    });
    return { status: response.status, contentType: response.headers.get('content-type'), bytes: new Uint8Array(await response.arrayBuffer()) };
  }

  /** Polls until the future is no longer `try_again`. */
  async settled(requestId: string, accept?: string): Promise<ApiResponse> {
    return vi.waitFor(
      async () => {
        const response = await this.retrieve(requestId, accept);
        if (response.status === 200 && response.body?.type === 'try_again') throw new Error('still pending');
        return response;
      },
      { timeout: 5000, interval: 5 },
    );
  }
}

/** A model `userId` made through create_model (with a field only newer SDKs send), its trainer ready and its create future answered. */
export async function createModel(api: TestApp, client: TinkerClient, userId: string, rank = 8) {
  const sessionId = await client.createSession();
  const submitted = await client.ok('create_model', {
    session_id: sessionId,
    model_seq_id: 0,
    base_model: MODEL,
    lora_config: { rank, train_unembed: true, train_mlp: true, train_attn: true },
    optimizer_config: { type: 'adamw' },
    type: 'create_model',
    a_field_from_a_newer_sdk: 1,
  });
  const modelId = `${sessionId}:train:0`;
  expect(submitted.model_id).toBe(modelId);
  const runId = (await api.services.training.runs.findByAlias({ userId, isAdmin: false }, modelId))!.id;
  const trainer = await FakeTrainer.readyForRun(api, runId);
  const init = await trainer.take();
  expect(init.operation).toEqual({ kind: 'init', lora_rank: rank });
  await trainer.post(init.id, { status: 'done', result: { step: 0, lora_rank: rank } });
  expect((await client.settled(submitted.request_id)).body).toEqual({ model_id: modelId, type: 'create_model' });
  return { sessionId, modelId, runId, trainer };
}

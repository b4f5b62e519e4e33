/**
 * The Tinker protocol at /tinker/api/v1 (loops-api.md Part 2) through `app.request`: the start-up
 * sequence, models and their training operations driven by a fake trainer on the relay, futures,
 * checkpoints under both their tinker:// and bt:// paths, sampling through a fake sampler, the
 * REST listing, archives and deletion, and the 400s a client can act on.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLIENT_CONFIG } from '#http/routes/tinker/session-routes.ts';
import { ForwardBackwardOutputSchema, ForwardBackwardRequestSchema, SampleResponseSchema } from '#http/routes/tinker/proto/tinker_public_pb.ts';
import { FakeSampler } from '#test/support/fake-sampler.ts';
import { FakeTrainer } from '#test/support/fake-trainer.ts';
import { createTestApp, createUserKey, type TestApp } from '#test/support/app.ts';
import { createModel as createModelAs, DATUM, FORWARD_RESULT, TinkerClient } from './tinker-support.ts';

const MODEL = 'bakehouse/toy-instruct';
const PROTOBUF = 'application/x-protobuf';

let api: TestApp;
let alice: TinkerClient;
let aliceKey: string;

beforeEach(async () => {
  api = await createTestApp({ serveBlobs: true, services: { training: { pollMs: 5 }, chatTiming: { pollMs: 5, livenessMs: 1000, replyTimeoutMs: 5000 } }, tinker: { pollHoldMs: 50 } });
  aliceKey = await createUserKey(api.request, 'alice');
  alice = new TinkerClient(api, aliceKey);
});
afterEach(() => api.close());

const createModel = () => createModelAs(api, alice, 'alice');

describe('start-up', () => {
  it('answers client/config with the chosen flags, dynamic_config, health, capabilities and telemetry', async () => {
    expect(await alice.ok('client/config', { sdk_version: '0.38.0' })).toEqual(CLIENT_CONFIG);
    expect(CLIENT_CONFIG.proto_compress_fwdbwd).toBe(true);
    expect(await alice.ok('client/dynamic_config', { sdk_version: '0.38.0' })).toMatchObject({ refresh_interval_sec: 300 });
    expect(await alice.ok('healthz')).toEqual({ status: 'ok' });
    expect((await alice.ok('get_server_capabilities')).supported_models).toContainEqual(expect.objectContaining({ model_name: MODEL }));
    expect(await alice.ok('telemetry', { events: [], platform: 'linux', sdk_version: '0.38.0', session_id: 'x', process_uuid: 'y' })).toEqual({ status: 'accepted' });
  });

  it('strips tml- from X-API-Key before the lookup, and refuses a missing or unknown key with 401', async () => {
    expect((await alice.call('healthz')).status).toBe(200);
    const bare = await api.request('GET', '/tinker/api/v1/healthz', { key: null, headers: { 'x-api-key': aliceKey } });
    expect(bare.status).toBe(200);
    const wrong = await api.request('POST', '/tinker/api/v1/create_session', { key: null, body: {}, headers: { 'x-api-key': 'tml-nope' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.message).toEqual(expect.any(String));
    expect((await api.request('POST', '/tinker/api/v1/create_session', { key: null, body: {} })).status).toBe(401);
  });

  it('keeps a session alive by heartbeat until it finishes, then answers 410', async () => {
    const sessionId = await alice.createSession();
    expect(await alice.ok('session_heartbeat', { session_id: sessionId, type: 'session_heartbeat' })).toEqual({ type: 'session_heartbeat' });
    expect(await alice.ok(`sessions/${sessionId}/finish`, { reason: { type: 'success' }, detail: null })).toEqual({});
    const after = await alice.call('session_heartbeat', { session_id: sessionId, type: 'session_heartbeat' });
    expect(after.status).toBe(410);
    expect(after.body.message).toMatch(/finished/);
    expect((await alice.call('session_heartbeat', { session_id: 'nosuch1', type: 'session_heartbeat' })).status).toBe(404);
  });
});

describe('models', () => {
  it('creates a run with protocol tinker under {session_id}:train:{n}, listed by the Loops API, and describes it strictly', async () => {
    const { modelId, runId, sessionId } = await createModel();
    const runs = await api.request('GET', '/v1/loops/runs', { key: aliceKey });
    expect(runs.body.runs.map((run: { id: string }) => run.id)).toContain(runId);
    expect((await api.services.training.runs.get({ userId: 'alice', isAdmin: false }, runId)).protocol).toBe('tinker');
    expect(await alice.ok('get_info', { model_id: modelId, type: 'get_info' })).toEqual({
      model_id: modelId,
      model_data: { model_name: MODEL, tokenizer_id: MODEL },
      is_lora: true,
      lora_rank: 8,
      model_name: MODEL,
      type: 'get_info',
    });
    // A retried create_model makes no second run.
    const again = await alice.ok('create_model', { session_id: sessionId, model_seq_id: 0, base_model: MODEL, lora_config: { rank: 8 } });
    expect(again.model_id).toBe(modelId);
    expect((await api.services.training.runs.list({ userId: 'alice', isAdmin: false })).length).toBe(1);
  });

  it('lists the caller’s sessions, newest first, and a session’s models and sampling sessions', async () => {
    const { modelId, sessionId } = await createModel();
    await alice.ok('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, base_model: MODEL });
    const newer = await alice.createSession();
    await new TinkerClient(api, await createUserKey(api.request, 'bob')).createSession();
    expect(await alice.ok('sessions')).toEqual({ sessions: [newer, sessionId] });
    expect(await alice.ok('sessions?limit=1&offset=1')).toEqual({ sessions: [sessionId] });
    expect(await alice.ok(`sessions/${sessionId}`)).toEqual({ training_run_ids: [modelId], sampler_ids: [`${sessionId}:sample:0`] });
    expect(await alice.ok(`sessions/${newer}`)).toEqual({ training_run_ids: [], sampler_ids: [] });
    expect((await alice.call('sessions?limit=0')).status).toBe(400);
  });

  it('answers bad create_model input with 400 and a sentence', async () => {
    const sessionId = await alice.createSession();
    const base = { session_id: sessionId, model_seq_id: 0, base_model: MODEL };
    const cases: [unknown, RegExp][] = [
      [{ ...base, optimizer_config: { type: 'dimuon', version: 1 } }, /optimizer_config.type: 'dimuon' is not supported/],
      [{ ...base, lora_config: { rank: 8, train_attn: false, train_mlp: false, train_unembed: false } }, /at least one of train_attn/],
      [{ ...base, lora_config: { rank: 4096 } }, /lora_rank must be a whole number from 1 to 512/],
      [{ ...base, base_model: 'no/such-model' }, /not available/],
      [{ session_id: sessionId, model_seq_id: 0 }, /base_model/],
      ['{not json', /not valid JSON/],
    ];
    for (const [body, message] of cases) {
      const response = await alice.call('create_model', body);
      expect(response.status, response.text).toBe(400);
      expect(response.body.message).toMatch(message);
      expect(response.headers.get('x-should-retry')).toBe('false');
    }
    expect((await alice.call('get_info', { model_id: 'nosuch:train:0' })).status).toBe(404);
  });

  it('unloads a model: its run is deactivated and the future says so', async () => {
    const { modelId, runId } = await createModel();
    const unload = await alice.ok('unload_model', { model_id: modelId, type: 'unload_model' });
    expect((await alice.settled(unload.request_id)).body).toEqual({ model_id: modelId, type: 'unload_model' });
    expect((await api.services.training.runs.get({ userId: 'alice', isAdmin: false }, runId)).state).toBe('inactive');
  });
});

describe('training operations', () => {
  it('runs forward_backward with summed losses, answers JSON or protobuf by Accept, and optim_step with Tinker AdamParams defaults', async () => {
    const { modelId, trainer } = await createModel();
    const fb = await alice.ok('forward_backward', { forward_backward_input: { data: [DATUM], loss_fn: 'cross_entropy' }, model_id: modelId, seq_id: 1, type: 'forward_backward' });
    const optim = await alice.ok('optim_step', { adam_params: { learning_rate: 0.001 }, model_id: modelId, seq_id: 2, type: 'optim_step' });
    const forward = await trainer.take();
    expect(forward.operation).toMatchObject({ kind: 'forward', backward: true, loss_fn: 'cross_entropy', normalization: 'sum', data: [{ tokens: [11, 12, 13] }] });
    expect((await alice.retrieve(fb.request_id)).body).toEqual({ type: 'try_again', request_id: fb.request_id, queue_state: 'active' });
    await trainer.post(forward.id, { status: 'done', result: FORWARD_RESULT });
    const json = (await alice.settled(fb.request_id)).body;
    expect(json).toEqual({
      loss_fn_output_type: 'ArrayRecord',
      loss_fn_outputs: [{ logprobs: { data: [-0.1, -0.5, -1], dtype: 'float32', shape: [3] } }],
      metrics: { 'loss:sum': 1.5, 'clip_fraction:mean': 0.25 },
    });
    for (const key of Object.keys(json.metrics)) expect(key.split(':')).toHaveLength(2);
    const proto = await alice.retrieveProtobuf(fb.request_id);
    expect(proto.contentType).toBe(PROTOBUF);
    const decoded = fromBinary(ForwardBackwardOutputSchema, proto.bytes);
    expect(decoded.metrics).toEqual({ 'loss:sum': 1.5, 'clip_fraction:mean': 0.25 });
    expect(decoded.lossFnOutputs[0]!.numDatums).toBe(1n);
    expect(Object.keys(decoded.lossFnOutputs[0]!.fields)).toEqual(['logprobs']);

    const step = await trainer.take();
    expect(step.operation).toEqual({ kind: 'optim_step', adam: { learning_rate: 0.001, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 0 } });
    await trainer.post(step.id, { status: 'done', result: { step: 1, learning_rate: 0.001, grad_norm: 0.5 } });
    expect((await alice.settled(optim.request_id)).body).toEqual({ metrics: { 'step:max': 1, 'learning_rate:mean': 0.001, 'grad_norm:mean': 0.5 } });
  });

  it('decodes a protobuf forward_backward (forward_only makes it a forward) and the ≤ 0.24 /forward route', async () => {
    const { modelId, trainer } = await createModel();
    // Token 91 is `[` in every int32: a body of them is binary data, not JSON nested 40 deep.
    const ids = Array.from({ length: 40 }, () => 91);
    const tokens = new Uint8Array(Int32Array.from(ids).buffer);
    const tensor = (dtype: number, array: Float32Array | BigInt64Array) => ({ encoding: { case: 'dense' as const, value: new Uint8Array(array.buffer) }, dtype, shape: [BigInt(array.length)] });
    const message = create(ForwardBackwardRequestSchema, {
      modelId,
      seqId: 1,
      lossFn: 'cross_entropy',
      forwardOnly: true,
      data: [
        {
          modelInput: [{ chunk: { case: 'encodedText', value: { tokens } } }],
          lossFnInputs: { target_tokens: tensor(2, BigInt64Array.from(ids, BigInt)), weights: tensor(1, Float32Array.from(ids, () => 1)) },
        },
      ],
    });
    const response = await api.app.request('/tinker/api/v1/forward_backward', {
      method: 'POST',
      headers: { 'x-api-key': `tml-${aliceKey}`, 'content-type': PROTOBUF },
      body: toBinary(ForwardBackwardRequestSchema, message),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const forward = await trainer.take();
    expect(forward.operation).toMatchObject({ kind: 'forward', backward: false, data: [{ tokens: ids }] });

    await alice.ok('forward', { forward_input: { data: [DATUM], loss_fn: 'cross_entropy' }, model_id: modelId, seq_id: 2 });
    await trainer.post(forward.id, { status: 'done', result: FORWARD_RESULT });
    expect((await trainer.take()).operation).toMatchObject({ kind: 'forward', backward: false });
  });

  it('answers bad training input with 400 at submit, and an engine failure with 200 {error, category}', async () => {
    const { modelId, trainer } = await createModel();
    const fb = (input: object) => alice.call('forward_backward', { forward_backward_input: { data: [DATUM], loss_fn: 'cross_entropy', ...input }, model_id: modelId, seq_id: 1 });
    const cases: [object, RegExp][] = [
      [{ loss_fn: 'dpo' }, /loss_fn: 'dpo' is not supported/],
      [{ data: [{ ...DATUM, model_input: { chunks: [{ type: 'image', data: 'x', format: 'png' }] } }] }, /image chunks are not supported/],
      [{ data: [{ ...DATUM, loss_fn_inputs: { target_tokens: { data: [1, 2], dtype: 'int64', shape: [2] } } }] }, /must be as long as model_input/],
      [{ data: [] }, /at least one datum/],
    ];
    for (const [input, message] of cases) {
      const response = await fb(input);
      expect(response.status, response.text).toBe(400);
      expect(response.body.message).toMatch(message);
    }
    const bad = await alice.call('forward_backward', '\u0000garbage', { 'content-type': PROTOBUF });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/not a protobuf/);
    const load = await alice.call('load_weights', { model_id: modelId, seq_id: 3, path: 'tinker://x/weights/y', optimizer: false });
    expect(load.status).toBe(400);
    expect(load.body.message).toMatch(/LoadWeights is not permitted with seq_id 3/);

    const ok = await alice.ok('forward_backward', { forward_backward_input: { data: [DATUM], loss_fn: 'cross_entropy' }, model_id: modelId, seq_id: 1 });
    const held = await trainer.take();
    await trainer.post(held.id, { status: 'error', error: 'Token id 999999 is outside the vocabulary of 1000.', error_class: 'ValueError' });
    expect((await alice.settled(ok.request_id)).body).toEqual({ error: 'Token id 999999 is outside the vocabulary of 1000.', category: 'user' });
    const optim = await alice.ok('optim_step', { adam_params: {}, model_id: modelId, seq_id: 2 });
    const step = await trainer.take();
    await trainer.post(step.id, { status: 'error', error: 'The trainer ran out of GPU memory.', error_class: 'RuntimeError' });
    expect((await alice.settled(optim.request_id)).body).toEqual({ error: 'The trainer ran out of GPU memory.', category: 'server' });
  });

  it('answers 404 to a future it never handed out', async () => {
    for (const id of ['nonsense', 'tf1.eyJraW5kIjoib3AifQ']) {
      const response = await alice.retrieve(id);
      expect(response.status).toBe(404);
      expect(response.body.message).toMatch(/unknown/);
    }
  });
});

describe('checkpoints', () => {
  async function save(client: TinkerClient, trainer: FakeTrainer, route: string, body: object) {
    const submitted = await client.ok(route, body);
    await trainer.answerSave(await trainer.take());
    return (await client.settled(submitted.request_id)).body;
  }

  it('saves under tinker:// paths that are the same checkpoints as their bt:// twins, chat-able and listed by both APIs', async () => {
    const { modelId, runId, trainer } = await createModel();
    expect(await save(alice, trainer, 'save_weights', { model_id: modelId, path: 'state-1', seq_id: 1 })).toEqual({ path: `tinker://${modelId}/weights/state-1`, type: 'save_weights' });
    expect(await save(alice, trainer, 'save_weights_for_sampler', { model_id: modelId, path: 'final', seq_id: 2, kind: 'snapshot' })).toEqual({
      path: `tinker://${modelId}/sampler_weights/final`,
      type: 'save_weights_for_sampler',
    });
    const actor = { userId: 'alice', isAdmin: false };
    const byTinker = await api.services.training.checkpoints.find(actor, `tinker://${modelId}/sampler_weights/final`);
    const byBt = await api.services.training.checkpoints.find(actor, `bt://loops:${runId}/sampler_weights/final`);
    expect(byTinker?.id).toBeDefined();
    expect(byTinker?.id).toBe(byBt?.id);
    // A Loops run is addressable by its id in a tinker:// path too.
    expect((await api.services.training.checkpoints.find(actor, `tinker://${runId}/weights/state-1`))?.name).toBe('state-1');

    const loopsList = await api.request('GET', `/v1/loops/checkpoints?run_id=${runId}`, { key: aliceKey });
    expect(loopsList.body.checkpoints.map((checkpoint: { checkpoint_id: string }) => checkpoint.checkpoint_id).sort()).toEqual(['final', 'state-1']);
    const listed = await alice.ok(`training_runs/${modelId}/checkpoints`);
    expect(listed.checkpoints).toEqual([
      expect.objectContaining({ checkpoint_id: 'weights/state-1', checkpoint_type: 'training', tinker_path: `tinker://${modelId}/weights/state-1`, public: false, base_model: MODEL }),
      expect.objectContaining({ checkpoint_id: 'sampler_weights/final', checkpoint_type: 'sampler', tinker_path: `tinker://${modelId}/sampler_weights/final` }),
    ]);
    const run = await alice.ok(`training_runs/${modelId}`);
    expect(run).toMatchObject({ training_run_id: modelId, base_model: MODEL, is_lora: true, lora_rank: 8, corrupted: false, last_checkpoint: { checkpoint_id: 'weights/state-1' }, last_sampler_checkpoint: { checkpoint_id: 'sampler_weights/final' } });
    const runs = await alice.ok('training_runs?limit=10&offset=0');
    expect(runs).toMatchObject({ training_runs: [{ training_run_id: modelId }], cursor: { offset: 0, limit: 10, total_count: 1 } });
    expect((await alice.ok('checkpoints')).checkpoints.map((checkpoint: { checkpoint_id: string }) => checkpoint.checkpoint_id)).toEqual(['sampler_weights/final', 'weights/state-1']);

    // Chat names the checkpoint by either path.
    const models = api.services.training.samplerWeights;
    expect(await models.findModel(actor, `tinker://${modelId}/sampler_weights/final`)).toEqual(await models.findModel(actor, `bt://loops:${runId}/sampler_weights/final`));
    expect(await alice.ok('weights_info', { tinker_path: `tinker://${modelId}/weights/state-1` })).toEqual({ base_model: MODEL, is_lora: true, lora_rank: 8, train_unembed: true, train_mlp: true, train_attn: true });
    expect((await alice.call('weights_info', { tinker_path: 'tinker://nope' })).status).toBe(400);
  });

  it('chats with a Tinker sampler checkpoint through /v1/chat/completions by its tinker:// path', async () => {
    const { modelId, runId, trainer } = await createModel();
    await save(alice, trainer, 'save_weights_for_sampler', { model_id: modelId, path: 'final', seq_id: 1 });
    const tinkerPath = `tinker://${modelId}/sampler_weights/final`;
    const reply = api.request('POST', '/v1/chat/completions', { key: aliceKey, body: { model: tinkerPath, messages: [{ role: 'user', content: 'shout this' }] } });
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    expect(request.model).toEqual({
      base_model: MODEL,
      adapters: [{ model_name: `bt://loops:${runId}/sampler_weights/final`, uri: expect.stringMatching(/\/checkpoints\/sampler\/final\/$/), version: expect.any(String) }],
    });
    await sampler.answer(request);
    const response = await reply;
    expect(response.status, response.text).toBe(200);
    expect(response.body).toMatchObject({ model: tinkerPath, choices: [{ message: { content: 'shout this' } }] });
  });

  it('makes an ephemeral checkpoint with its sampling session for an unnamed save, once however often it is retrieved', async () => {
    const { modelId, sessionId, trainer } = await createModel();
    const submitted = await alice.ok('save_weights_for_sampler', { model_id: modelId, seq_id: 1, sampling_session_seq_id: 0, kind: 'snapshot' });
    const held = await trainer.take();
    expect(held.operation).toMatchObject({ kind: 'save', what: 'sampler', publish: true });
    await trainer.answerSave(held);
    // No `path`: tinker 0.16.1 asserts an unnamed save answers without one.
    const expected = { sampling_session_id: `${sessionId}:sample:0`, type: 'save_weights_for_sampler' };
    expect((await alice.settled(submitted.request_id)).body).toEqual(expected);
    expect((await alice.settled(submitted.request_id)).body).toEqual(expected);
    const path = `tinker://${modelId}/sampler_weights/ephemeral_0`;
    // Subject to the retention rule of checkpoints published per sampling client.
    expect((await api.services.training.checkpoints.find({ userId: 'alice', isAdmin: false }, path))?.ephemeral).toBe(true);
    expect((await api.services.training.samplers.list({ userId: 'alice', isAdmin: false })).length).toBe(1);
    expect(await alice.ok(`samplers/${sessionId}:sample:0`)).toEqual({ sampler_id: `${sessionId}:sample:0`, base_model: MODEL, model_path: path });
  });

  it('redirects an archive to a signed tarball built once, and deletes a checkpoint by its two-segment id', async () => {
    const { modelId, trainer } = await createModel();
    const submitted = await alice.ok('save_weights_for_sampler', { model_id: modelId, path: 'final', seq_id: 1 });
    const held = await trainer.take();
    const files = { 'adapter_config.json': '{"r": 8}', 'adapter_model.safetensors': 'weights!' };
    const prefix = `training/runs/${(held.operation as { uri: string }).uri.split('/training/runs/')[1]}`;
    for (const [name, text] of Object.entries(files)) await api.jobs.blobs.put(`${prefix}${name}`, text);
    await trainer.answerSave(held);
    await alice.settled(submitted.request_id);

    const archive = await alice.call(`training_runs/${modelId}/checkpoints/sampler_weights/final/archive`);
    expect(archive.status).toBe(302);
    const location = new URL(archive.headers.get('location')!, 'http://api.test');
    const tarball = await api.app.request(location.pathname + location.search);
    expect(tarball.status).toBe(200);
    const { gunzipSync } = await import('node:zlib');
    const tar = gunzipSync(Buffer.from(await tarball.arrayBuffer())).toString('latin1');
    expect(tar).toContain('adapter_config.json');
    expect(tar).toContain('weights!');
    const archives = await api.jobs.blobs.list(`${prefix}.archive/`);
    expect(archives).toHaveLength(1);
    await alice.call(`training_runs/${modelId}/checkpoints/sampler_weights/final/archive`);
    expect(await api.jobs.blobs.list(`${prefix}.archive/`)).toEqual(archives);

    const deleted = await alice.call(`training_runs/${modelId}/checkpoints/sampler_weights/final`, undefined, {}, 'DELETE');
    expect(deleted.status).toBe(204);
    expect((await alice.ok(`training_runs/${modelId}/checkpoints`)).checkpoints).toEqual([]);
    const again = await alice.call(`training_runs/${modelId}/checkpoints/sampler_weights/final`, undefined, {}, 'DELETE');
    expect(again.status).toBe(404);
    expect(again.body.message).toMatch(/not found/);
  });

  it('loads weights as a model’s first operation, and creates a model from a checkpoint by session (0.38)', async () => {
    const { modelId, sessionId, trainer } = await createModel();
    await save(alice, trainer, 'save_weights', { model_id: modelId, path: 'state-1', seq_id: 1 });
    const path = `tinker://${modelId}/weights/state-1`;
    const created = await alice.ok('load_weights', { session_id: sessionId, model_seq_id: 1, path, optimizer: true, type: 'load_weights' });
    const newModel = `${sessionId}:train:1`;
    expect(created.model_id).toBe(newModel);
    const newRun = (await api.services.training.runs.findByAlias({ userId: 'alice', isAdmin: false }, newModel))!;
    expect(newRun).toMatchObject({ protocol: 'tinker', baseModel: MODEL, loraRank: 8, fromPath: path });
    const second = await FakeTrainer.forRun(api, newRun.id);
    await second.ready();
    const init = await second.take();
    expect(init.operation.kind).toBe('init');
    await second.post(init.id, { status: 'done', result: { step: 0, lora_rank: 8 } });
    const load = await second.take();
    expect(load.operation).toMatchObject({ kind: 'load', with_optimizer: true });
    await second.post(load.id, { status: 'done', result: { step: 3 } });
    expect((await alice.settled(created.request_id)).body).toEqual({ model_id: newModel, type: 'load_weights' });

    const missing = await alice.call('load_weights', { session_id: sessionId, model_seq_id: 2, path: `tinker://${modelId}/weights/nope`, optimizer: false });
    expect(missing.status).toBe(404);
    const neither = await alice.call('load_weights', { path, optimizer: false });
    expect(neither.status).toBe(400);
    expect(neither.body.message).toMatch(/needs model_id/);
  });
});

describe('sampling', () => {
  it('samples through a sampling session with one sample_sequence_id per sample, every stop form, and results as JSON or protobuf', async () => {
    const sessionId = await alice.createSession();
    const session = await alice.ok('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, base_model: MODEL, type: 'create_sampling_session' });
    expect(session).toEqual({ sampling_session_id: `${sessionId}:sample:0`, type: 'create_sampling_session' });
    const request = (stop: unknown, seq: number) => ({
      num_samples: 2,
      prompt: { chunks: [{ type: 'encoded_text', tokens: [5, 6, 7] }] },
      sampling_params: { max_tokens: 8, temperature: 0.7, top_k: -1, top_p: 1, seed: 42, stop },
      sampling_session_id: session.sampling_session_id,
      seq_id: seq,
      prompt_logprobs: true,
      topk_prompt_logprobs: 2,
      topk_sample_logprobs: 0,
      prompt_alt_tokens_k: 0,
      record_stability_info: false,
      type: 'sample',
    });
    const submitted = await alice.ok('asample', request('\n', 0), { 'x-tinker-sampling-backpressure': '1' });
    expect(submitted.sample_sequence_ids).toHaveLength(2);
    expect(new Set(submitted.sample_sequence_ids).size).toBe(2);
    const sampler = await FakeSampler.started(api);
    const sample = await sampler.takeSample();
    expect(sample.sample).toEqual({ prompt_tokens: [5, 6, 7], n: 2, temperature: 0.7, top_p: 1, top_k: 0, max_tokens: 8, seed: 42, stop: ['\n'], stop_token_ids: [], prompt_logprobs: 2 });
    await sampler.answerSample(sample, { prompt_logprobs: [null, -1, -2], topk_prompt_logprobs: [null, [[6, -1], [9, -3]], [[7, -2], [1, -2.5]]] });
    const json = (await alice.settled(submitted.request_id)).body;
    expect(json).toEqual({
      sequences: [
        { stop_reason: 'stop', tokens: [7, 6, 5], logprobs: [-0.5, -0.5, -0.5] },
        { stop_reason: 'stop', tokens: [7, 6, 5], logprobs: [-0.5, -0.5, -0.5] },
      ],
      prompt_logprobs: [null, -1, -2],
      topk_prompt_logprobs: [null, [[6, -1], [9, -3]], [[7, -2], [1, -2.5]]],
      prompt_cache_hit_tokens: 0,
      type: 'sample',
    });
    const proto = await alice.retrieveProtobuf(submitted.request_id);
    expect(proto.contentType).toBe(PROTOBUF);
    const decoded = fromBinary(SampleResponseSchema, proto.bytes);
    expect(decoded.sequences).toHaveLength(2);
    expect(Array.from(new Int32Array(decoded.sequences[0]!.tokens.slice().buffer))).toEqual([7, 6, 5]);
    // A retried submit (same session and seq_id) is the same sample.
    expect((await alice.ok('asample', request('\n', 0))).request_id).toBe(submitted.request_id);

    await alice.ok('asample', request(['a', 'b'], 1));
    expect((await sampler.takeSample()).sample).toMatchObject({ stop: ['a', 'b'], stop_token_ids: [] });
    await alice.ok('asample', request([2, 3], 2));
    expect((await sampler.takeSample()).sample).toMatchObject({ stop: [], stop_token_ids: [2, 3] });
    await alice.ok('asample', { ...request(null, 3), prompt_logprobs: false, topk_prompt_logprobs: 0 });
    expect((await sampler.takeSample()).sample).toMatchObject({ prompt_logprobs: null });
  });

  it('refuses sampling options it cannot honour, and a session that names neither or both weights', async () => {
    const sessionId = await alice.createSession();
    const both = await alice.call('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 0, base_model: MODEL, model_path: 'tinker://a/sampler_weights/b' });
    expect(both.status).toBe(400);
    expect(both.body.message).toMatch(/exactly one of base_model and model_path/);
    const { sampling_session_id: id } = await alice.ok('create_sampling_session', { session_id: sessionId, sampling_session_seq_id: 1, base_model: MODEL });
    const base = { prompt: { chunks: [{ type: 'encoded_text', tokens: [1] }] }, sampling_params: {}, sampling_session_id: id, seq_id: 0 };
    for (const [extra, message] of [
      [{ prompt_alt_tokens_k: 2 }, /prompt_alt_tokens_k/],
      [{ prompt_logprobs_last_n: 4 }, /prompt_logprobs_last_n/],
      [{ topk_sample_logprobs: 3 }, /topk_sample_logprobs/],
    ] as const) {
      const response = await alice.call('asample', { ...base, ...extra });
      expect(response.status).toBe(400);
      expect(response.body.message).toMatch(message);
    }
    expect((await alice.call('asample', { ...base, sampling_session_id: 'nope:sample:0' })).status).toBe(404);
  });
});

/**
 * The Loops control plane (loops-api.md Part 1, loops-data-plane.md §4) through `app.request`:
 * every route, its success and its documented errors, in the shapes the `baseten-loops` SDK
 * validates, with `X-Baseten-Error-Source: 06` on every 4xx.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { actorOf, saveCheckpoint } from '#test/support/training.ts';
import { ADMIN_KEY, createTestApp, createUserKey, type ApiResponse, type TestApp } from '#test/support/app.ts';

const MODEL = 'bakehouse/toy-instruct';
const ORIGIN = 'http://localhost';

let api: TestApp;
let aliceKey: string;
let bobKey: string;

/** A request as the SDK sends it: `Authorization: Api-Key <key>`, JSON bodies. */
async function loops(method: string, path: string, body?: unknown, key: string | null = aliceKey, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return api.request(method, path, { body, key: null, headers: { ...(key ? { authorization: `Api-Key ${key}` } : {}), ...headers } });
}

/** The Loops error shape with the gateway-rejection headers the SDK reads (loops-data-plane.md §3.3–§3.4). */
function expectLoopsError(response: ApiResponse, status: number, reason: string, message?: RegExp): void {
  expect({ status: response.status, body: response.body }, response.text).toMatchObject({ status, body: { error: expect.any(String), details: { reason } } });
  expect(response.headers.get('x-baseten-error-source')).toBe('06');
  expect(response.headers.get('x-baseten-error-code')).toBe(reason);
  if (message) expect(response.body.error).toMatch(message);
  expect(response.text).not.toMatch(/\/work\/|\.ts:\d|at \w+ \(/);
}

async function session(key = aliceKey): Promise<string> {
  const response = await loops('POST', '/v1/loops/sessions', undefined, key);
  expect(response.status, response.text).toBe(200);
  return response.body.session.id as string;
}

/** What `create_lora_training_client` sends (loops-data-plane.md §4.1). */
const trainerBody = (sessionId: string, extra: Record<string, unknown> = {}) => ({
  session_id: sessionId,
  base_model: MODEL,
  lora_rank: 32,
  replicas: 1,
  availability_model: 'dedicated',
  ...extra,
});

async function trainer(sessionId?: string, key = aliceKey): Promise<{ sessionId: string; run: Record<string, unknown> & { id: string } }> {
  const sid = sessionId ?? (await session(key));
  const response = await loops('POST', '/v1/loops/trainers', trainerBody(sid), key);
  expect(response.status, response.text).toBe(200);
  return { sessionId: sid, run: response.body.run };
}

/** The fields `LoopsSamplerV1` requires, as the SDK reads them for the serverless path. */
function expectSdkSampler(sampler: Record<string, unknown>, id = expect.any(String)): void {
  expect(sampler).toMatchObject({
    id,
    base_model: MODEL,
    model_id: null,
    deployment_id: null,
    created_at: expect.any(String),
    status: { name: 'ACTIVE' },
    node_count: 1,
    base_checkpoint: null,
  });
  expect(sampler.base_url).toBe(`${ORIGIN}/loops/samplers/${sampler.id as string}`);
}

/** The SDK's `Checkpoint` model: base_model and lora_adapter_config.r required, never null (BL/models.py:392-413). */
function expectSdkCheckpoint(checkpoint: Record<string, unknown>): void {
  expect(checkpoint).toMatchObject({
    id: expect.stringMatching(/^[0-9A-Za-z]{7}$/),
    run_id: expect.any(String),
    checkpoint_id: expect.any(String),
    checkpoint_type: 'lora',
    created_at: expect.any(String),
    base_model: MODEL,
    lora_adapter_config: { r: expect.any(Number) },
    size_bytes: expect.any(Number),
    sync_status: 'COMPLETE',
  });
  expect(['sampler', 'trainer']).toContain(checkpoint.target);
  expect(Number.isInteger((checkpoint.lora_adapter_config as { r: number }).r)).toBe(true);
}

beforeEach(async () => {
  api = await createTestApp();
  aliceKey = await createUserKey(api.request, 'alice');
  bobKey = await createUserKey(api.request, 'bob');
});
afterEach(() => api.close());

describe('authentication', () => {
  it('accepts Api-Key, as the SDK sends it, and Bearer, as the REST docs show it', async () => {
    expect((await loops('POST', '/v1/loops/sessions')).status).toBe(200);
    expect((await loops('POST', '/v1/loops/sessions', undefined, null, { authorization: `Bearer ${aliceKey}` })).status).toBe(200);
  });

  it('answers a missing or unknown key with 401 and 06', async () => {
    expectLoopsError(await loops('POST', '/v1/loops/sessions', undefined, null), 401, 'unauthorized');
    expectLoopsError(await loops('GET', '/v1/loops/runs', undefined, 'bh_not_a_key'), 401, 'unauthorized');
  });

  it('answers an unknown route under /v1/loops in the Loops shape', async () => {
    expectLoopsError(await loops('GET', '/v1/loops/nothing-here'), 404, 'not_found');
  });
});

describe('sessions', () => {
  it('creates a session with no body (what ServiceClient sends) and reads it back', async () => {
    const created = await loops('POST', '/v1/loops/sessions');
    expect(created.body.session).toMatchObject({ id: expect.any(String), training_project_id: null });
    const read = await loops('GET', `/v1/loops/sessions/${created.body.session.id}`);
    expect(read.status).toBe(200);
    expect(read.body.session.id).toBe(created.body.session.id);
  });

  it('creates a session from an empty POST with Content-Length 0 and no Content-Type, as httpx sends it', async () => {
    const response = await api.app.request('/v1/loops/sessions', {
      method: 'POST',
      headers: { authorization: `Api-Key ${aliceKey}`, 'content-length': '0' },
      body: new Uint8Array(0),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    expect(((await response.json()) as { session: { id: string } }).session.id).toEqual(expect.any(String));
  });

  it('keeps a training_project_id when one is given', async () => {
    const created = await loops('POST', '/v1/loops/sessions', { training_project_id: 'proj1' });
    expect(created.body.session.training_project_id).toBe('proj1');
  });

  it("answers another user's session and an unknown one with 404", async () => {
    const id = await session(bobKey);
    expectLoopsError(await loops('GET', `/v1/loops/sessions/${id}`), 404, 'not_found');
    expectLoopsError(await loops('GET', '/v1/loops/sessions/nope123'), 404, 'not_found');
  });
});

describe('POST /v1/loops/trainers (create_lora_training_client)', () => {
  it('creates a trainer-only run whose fields choose the SDK’s serverless trainer path', async () => {
    const sid = await session();
    const response = await loops('POST', '/v1/loops/trainers', trainerBody(sid));
    expect(response.status, response.text).toBe(200);
    const { run } = response.body;
    expect(run).toMatchObject({
      id: expect.stringMatching(/^[0-9A-Za-z]{7}$/),
      session_id: sid,
      name: MODEL,
      base_model: MODEL,
      deployment_id: null,
      base_checkpoint: null,
      status: { name: 'ACTIVE' },
      user: { id: 'alice' },
      lora_rank: 32,
      availability_model: 'dedicated',
      scale_down_delay_seconds: 3600,
      sampler: null,
      created_at: expect.any(String),
    });
    expect(run.base_url).toBe(`${ORIGIN}/loops/trainers/${run.id}`);
  });

  it('takes the REST defaults when fields are left out: rank 64, an hour of idling, dedicated', async () => {
    const response = await loops('POST', '/v1/loops/trainers', { session_id: await session(), base_model: MODEL, name: 'mine', seed: 3, max_seq_len: 512 });
    expect(response.body.run).toMatchObject({ lora_rank: 64, scale_down_delay_seconds: 3600, availability_model: 'dedicated', name: 'mine' });
  });

  it('builds base_url from the configured data-plane origin', async () => {
    await api.close();
    api = await createTestApp({ loops: { dataPlaneUrl: 'https://data.example.com/' } });
    aliceKey = await createUserKey(api.request, 'alice');
    const { run } = await trainer();
    expect(run.base_url).toBe(`https://data.example.com/loops/trainers/${run.id}`);
  });

  it('serves the team root and the debug aliases alike', async () => {
    const teams = await loops('GET', '/v1/teams');
    expect(teams.body).toEqual({ teams: [{ id: 'default', name: 'default' }] });
    const created = await loops('POST', '/v1/teams/default/loops/sessions');
    const sid = created.body.session.id;
    for (const path of ['/v1/teams/default/loops/trainers', '/v1/teams/default/loops/debug/trainers', '/v1/loops/debug/trainers']) {
      const response = await loops('POST', path, trainerBody(sid, { debug_version: 'v2', scope: 'internal' }));
      expect(response.status, `${path}: ${response.text}`).toBe(200);
      expect(response.body.run.sampler).toBeNull();
    }
    expectLoopsError(await loops('POST', '/v1/teams/other/loops/trainers', trainerBody(sid)), 404, 'not_found', /GET \/v1\/teams/);
  });

  it('refuses bad input with 400 and a sentence: unsupported fields, out-of-range values, an unknown model', async () => {
    const sid = await session();
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { base_checkpoint: 'hf://org/repo' })), 400, 'invalid_request', /base_checkpoint is not supported/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { replicas: 2 })), 400, 'invalid_request', /replicas/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { scale_down_delay_seconds: 3601 })), 400, 'invalid_request', /scale_down_delay_seconds/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { availability_model: 'preemptible' })), 400, 'invalid_request', /availability_model/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { lora_rank: 4096 })), 400, 'invalid_request', /lora_rank/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(sid, { base_model: 'no/such-model' })), 400, 'invalid_request');
    expectLoopsError(await loops('POST', '/v1/loops/trainers', { base_model: MODEL }), 400, 'invalid_request', /session_id/);
    expectLoopsError(await loops('POST', '/v1/loops/trainers', '{not json', aliceKey, { 'content-type': 'application/json' }), 400, 'invalid_request');
    expectLoopsError(await loops('POST', '/v1/loops/trainers', JSON.stringify(trainerBody(sid)), aliceKey, { 'content-type': 'text/plain' }), 415, 'unsupported_media_type', /application\/json/);
  });

  it("answers an unknown or another user's session with 404", async () => {
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody('nope123')), 404, 'not_found');
    expectLoopsError(await loops('POST', '/v1/loops/trainers', trainerBody(await session(bobKey))), 404, 'not_found');
  });
});

describe('runs', () => {
  it('POST /v1/loops/runs pairs a sampler at once', async () => {
    const response = await loops('POST', '/v1/loops/runs', trainerBody(await session()));
    expect(response.status, response.text).toBe(200);
    expectSdkSampler(response.body.run.sampler);
    expect(response.body.run.sampler.run_id).toBe(response.body.run.id);
  });

  it('lists the caller’s runs, filtered by run_id or base_model, each with its sampler', async () => {
    const { run: first } = await trainer();
    const { run: second } = await trainer();
    await trainer(undefined, bobKey);
    await loops('POST', '/v1/loops/samplers', { session_id: first.session_id, run_id: first.id });
    const all = await loops('GET', '/v1/loops/runs');
    expect(all.body.runs.map((run: { id: string }) => run.id).sort()).toEqual([first.id, second.id].sort());
    const one = await loops('GET', `/v1/loops/runs?run_id=${first.id}`);
    expect(one.body.runs).toHaveLength(1);
    expectSdkSampler(one.body.runs[0].sampler);
    expect((await loops('GET', `/v1/loops/runs?base_model=${encodeURIComponent(MODEL)}`)).body.runs).toHaveLength(2);
    expect((await loops('GET', '/v1/loops/runs?base_model=Qwen/Qwen3-8B')).body.runs).toEqual([]);
    expect((await loops('GET', '/v1/teams/default/loops/runs')).body.runs).toHaveLength(2);
  });

  it('gets a run, with its sampler once one is paired', async () => {
    const { run } = await trainer();
    expect((await loops('GET', `/v1/loops/runs/${run.id}`)).body.run).toMatchObject({ id: run.id, sampler: null });
    await loops('POST', '/v1/loops/samplers', { session_id: run.session_id, run_id: run.id });
    expectSdkSampler((await loops('GET', `/v1/loops/runs/${run.id}`)).body.run.sampler);
  });

  it('deactivates a run for good, answering {id, base_model, user}', async () => {
    const { run } = await trainer();
    const response = await loops('POST', `/v1/loops/runs/${run.id}/deactivate`);
    expect(response.status, response.text).toBe(200);
    expect(response.body).toEqual({ id: run.id, base_model: MODEL, user: { id: 'alice', email: null } });
    expect((await loops('GET', `/v1/loops/runs/${run.id}`)).body.run.status).toEqual({ name: 'INACTIVE' });
  });

  it("answers another user's run with 404 on get and deactivate", async () => {
    const { run } = await trainer(undefined, bobKey);
    expectLoopsError(await loops('GET', `/v1/loops/runs/${run.id}`), 404, 'not_found');
    expectLoopsError(await loops('POST', `/v1/loops/runs/${run.id}/deactivate`), 404, 'not_found');
    expect((await loops('GET', `/v1/loops/runs/${run.id}`, undefined, bobKey)).body.run.status.name).toBe('ACTIVE');
  });
});

describe('samplers', () => {
  it('pairs one sampler per run: a second create returns the same one', async () => {
    const { run, sessionId } = await trainer();
    const first = await loops('POST', '/v1/loops/samplers', { session_id: sessionId, run_id: run.id });
    expect(first.status, first.text).toBe(200);
    expectSdkSampler(first.body.sampler);
    const again = await loops('POST', '/v1/loops/samplers', { session_id: sessionId, run_id: run.id, num_replicas: 1 });
    expect(again.body.sampler.id).toBe(first.body.sampler.id);
  });

  it('creates standalone samplers from a base model or a sampler_weights checkpoint', async () => {
    const { run, sessionId } = await trainer();
    const fromBase = await loops('POST', '/v1/loops/samplers', { session_id: sessionId, base_model: MODEL, availability_model: 'dedicated' });
    expectSdkSampler(fromBase.body.sampler);
    expect(fromBase.body.sampler).toMatchObject({ run_id: null, model_path: null });
    const saved = await saveCheckpoint(api, (await api.services.training.runs.get(actorOf('alice'), run.id)), 'step-1');
    const fromPath = await loops('POST', '/v1/loops/samplers', { session_id: sessionId, model_path: saved.path, max_seq_length: 256 });
    expect(fromPath.status, fromPath.text).toBe(200);
    expectSdkSampler(fromPath.body.sampler);
    expect(fromPath.body.sampler.model_path).toBe(`bt://loops:${run.id}/sampler_weights/step-1`);
  });

  it('refuses a create with none or several of run_id, base_model and model_path, and more than one replica', async () => {
    const sid = await session();
    expectLoopsError(await loops('POST', '/v1/loops/samplers', { session_id: sid }), 400, 'invalid_request', /exactly one of run_id/);
    expectLoopsError(await loops('POST', '/v1/loops/samplers', { session_id: sid, base_model: MODEL, model_path: 'bt://loops:x/sampler_weights/a' }), 400, 'invalid_request');
    expectLoopsError(await loops('POST', '/v1/loops/samplers', { session_id: sid, base_model: MODEL, num_replicas: 2 }), 400, 'invalid_request', /num_replicas/);
    expectLoopsError(await loops('POST', '/v1/loops/samplers', { session_id: sid, model_path: 'bt://loops:abc1234/sampler_weights/none' }), 404, 'not_found');
  });

  it("answers another user's run or sampler with 404", async () => {
    const { run } = await trainer(undefined, bobKey);
    expectLoopsError(await loops('POST', '/v1/loops/samplers', { session_id: await session(), run_id: run.id }), 404, 'not_found');
    const bobs = await loops('POST', '/v1/loops/samplers', { session_id: run.session_id, run_id: run.id }, bobKey);
    expectLoopsError(await loops('GET', `/v1/loops/samplers/${bobs.body.sampler.id}`), 404, 'not_found');
  });

  it('lists the caller’s samplers newest first and gets one', async () => {
    const sid = await session();
    const older = await loops('POST', '/v1/loops/samplers', { session_id: sid, base_model: MODEL });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const newer = await loops('POST', '/v1/teams/default/loops/samplers', { session_id: sid, base_model: MODEL });
    await loops('POST', '/v1/loops/samplers', { session_id: await session(bobKey), base_model: MODEL }, bobKey);
    const listed = await loops('GET', '/v1/loops/samplers');
    expect(listed.body.samplers.map((sampler: { id: string }) => sampler.id)).toEqual([newer.body.sampler.id, older.body.sampler.id]);
    expect((await loops('GET', '/v1/teams/default/loops/samplers')).body.samplers).toHaveLength(2);
    const one = await loops('GET', `/v1/loops/samplers/${older.body.sampler.id}`);
    expectSdkSampler(one.body.sampler, older.body.sampler.id);
  });

  it('shows a deactivated run’s sampler as INACTIVE', async () => {
    const response = await loops('POST', '/v1/loops/runs', trainerBody(await session()));
    await loops('POST', `/v1/loops/runs/${response.body.run.id}/deactivate`);
    expect((await loops('GET', `/v1/loops/samplers/${response.body.run.sampler.id}`)).body.sampler.status).toEqual({ name: 'INACTIVE' });
  });
});

describe('checkpoints', () => {
  async function savedRun() {
    const { run } = await trainer();
    const record = await api.services.training.runs.get(actorOf('alice'), run.id);
    const sampler = await saveCheckpoint(api, record, 'step-1');
    const state = await saveCheckpoint(api, record, 'step-1', { target: 'trainer' });
    return { run, sampler, state };
  }

  it('lists a run’s checkpoints as records the SDK validates', async () => {
    const { run, sampler, state } = await savedRun();
    const response = await loops('GET', `/v1/loops/checkpoints?run_id=${run.id}`);
    expect(response.status, response.text).toBe(200);
    expect(response.body.checkpoints).toHaveLength(2);
    for (const checkpoint of response.body.checkpoints) expectSdkCheckpoint(checkpoint);
    expect(response.body.checkpoints.map((checkpoint: { id: string; target: string }) => [checkpoint.id, checkpoint.target]).sort()).toEqual(
      [
        [sampler.id, 'sampler'],
        [state.id, 'trainer'],
      ].sort(),
    );
  });

  it('finds a checkpoint by path (create_training_client_from_state) and by base model', async () => {
    const { state } = await savedRun();
    const byPath = await loops('GET', `/v1/loops/checkpoints?checkpoint_path=${encodeURIComponent(state.path)}`);
    expect(byPath.body.checkpoints).toHaveLength(1);
    expect(byPath.body.checkpoints[0]).toMatchObject({ id: state.id, target: 'trainer', checkpoint_id: 'step-1', lora_adapter_config: { r: 8 } });
    expect((await loops('GET', `/v1/loops/checkpoints?base_model=${encodeURIComponent(MODEL)}`)).body.checkpoints).toHaveLength(2);
    const missing = await loops('GET', `/v1/loops/checkpoints?checkpoint_path=${encodeURIComponent('bt://loops:abc1234/weights/none')}`);
    expect(missing.body.checkpoints).toEqual([]);
  });

  it('needs exactly one of run_id, base_model and checkpoint_path (400)', async () => {
    const { run } = await savedRun();
    expectLoopsError(await loops('GET', '/v1/loops/checkpoints'), 400, 'invalid_request', /exactly one of run_id, base_model or checkpoint_path/);
    expectLoopsError(await loops('GET', `/v1/loops/checkpoints?run_id=${run.id}&base_model=${MODEL}`), 400, 'invalid_request', /exactly one/);
    expectLoopsError(await loops('GET', '/v1/loops/checkpoints?checkpoint_path=s3://bucket/x'), 400, 'invalid_request', /not a checkpoint path/);
  });

  it("hides another user's checkpoints: their run is 404, their files 404", async () => {
    const { run, sampler } = await savedRun();
    expectLoopsError(await loops('GET', `/v1/loops/checkpoints?run_id=${run.id}`, undefined, bobKey), 404, 'not_found');
    expectLoopsError(await loops('GET', `/v1/loops/checkpoints/${sampler.id}/files`, undefined, bobKey), 404, 'not_found');
    expectLoopsError(await loops('GET', `/v1/loops/checkpoints/${sampler.id}/source`, undefined, bobKey), 404, 'not_found');
  });

  it('pages files with a numeric page_token, each a presigned URL on node 0', async () => {
    const { sampler } = await savedRun();
    const first = await loops('GET', `/v1/loops/checkpoints/${sampler.id}/files?page_size=1`);
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ next_page_token: 1, total_count: 2 });
    expect(first.body.presigned_urls).toEqual([
      { url: expect.stringMatching(/^https?:\/\//), relative_file_name: 'adapter_config.json', node_rank: 0, size_bytes: 2, last_modified: expect.any(String) },
    ]);
    const last = await loops('GET', `/v1/loops/checkpoints/${sampler.id}/files?page_size=1&page_token=1`);
    expect(last.body).toMatchObject({ next_page_token: null, total_count: 2, presigned_urls: [{ relative_file_name: 'adapter_model.safetensors' }] });
    const whole = await loops('GET', `/v1/loops/checkpoints/${sampler.id}/files`);
    expect(whole.body).toMatchObject({ next_page_token: null, total_count: 2 });
    expect(whole.body.presigned_urls).toHaveLength(2);
    expectLoopsError(await loops('GET', `/v1/loops/checkpoints/${sampler.id}/files?page_token=-1`), 400, 'invalid_request', /page_token/);
    expectLoopsError(await loops('GET', '/v1/loops/checkpoints/nope123/files'), 404, 'not_found');
  });

  it('says every checkpoint comes from s3', async () => {
    const { state } = await savedRun();
    expect((await loops('GET', `/v1/loops/checkpoints/${state.id}/source`)).body).toEqual({ source: { kind: 's3' } });
    expectLoopsError(await loops('GET', '/v1/loops/checkpoints/nope123/source'), 404, 'not_found');
  });

  it('validates a sampler checkpoint for a run (TrainingClient.create_sampling_client)', async () => {
    const { run, sampler, state } = await savedRun();
    const ok = await loops('POST', '/v1/loops/checkpoints/validate', { checkpoint_path: sampler.path, run_id: run.id });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toEqual({});
    expectLoopsError(await loops('POST', '/v1/loops/checkpoints/validate', { checkpoint_path: state.path }), 400, 'invalid_request', /training state/);
    expectLoopsError(await loops('POST', '/v1/loops/checkpoints/validate', { checkpoint_path: 'nonsense' }), 400, 'invalid_request', /not a checkpoint path/);
    expectLoopsError(await loops('POST', '/v1/loops/checkpoints/validate', { checkpoint_path: sampler.path }, bobKey), 400, 'invalid_request');
  });
});

describe('deployments', () => {
  it('lists active runs as deployments, gets one with its status, and deactivates it', async () => {
    const { run } = await trainer();
    const { run: stopped } = await trainer();
    await loops('POST', `/v1/loops/runs/${stopped.id}/deactivate`);
    const listed = await loops('GET', '/v1/loops/deployments');
    expect(listed.body.deployments.map((deployment: { id: string }) => deployment.id)).toEqual([run.id]);
    expect(listed.body.deployments[0]).toMatchObject({
      id: run.id,
      active_run_id: run.id,
      latest_run_id: run.id,
      base_model: MODEL,
      base_url: `${ORIGIN}/loops/trainers/${run.id}`,
      status: { name: 'DEPLOYING' },
      user: { id: 'alice' },
      availability_model: 'dedicated',
      instance_type: { gpu_count: 1 },
      node_count: 1,
      sampler: null,
    });
    const got = await loops('GET', `/v1/loops/deployments/${stopped.id}`);
    expect(got.body.deployment).toMatchObject({ id: stopped.id, active_run_id: null, status: { name: 'STOPPED' } });
    const deactivated = await loops('POST', `/v1/loops/deployments/${run.id}/deactivate`);
    expect(deactivated.body).toEqual({ id: run.id, base_model: MODEL, user: { id: 'alice', email: null } });
    expect((await loops('GET', '/v1/loops/deployments')).body.deployments).toEqual([]);
    expectLoopsError(await loops('GET', `/v1/loops/deployments/${run.id}`, undefined, bobKey), 404, 'not_found');
    expectLoopsError(await loops('POST', `/v1/loops/deployments/${run.id}/deactivate`, undefined, bobKey), 404, 'not_found');
  });
});

describe('capabilities', () => {
  it('lists the model catalog', async () => {
    const response = await loops('GET', '/v1/loops/capabilities');
    expect(response.body.supported_models).toContainEqual({ model_name: MODEL, supports_vision_language: false });
    expect(response.body.supported_models.map((model: { model_name: string }) => model.model_name)).toEqual(api.services.models.baseModels());
  });
});

describe('legacy trainer-session routes', () => {
  it('create sessions, trainers with their sampling servers, and samplers', async () => {
    for (const path of ['/v1/trainer_sessions', '/v1/trainers/sessions']) {
      expect((await loops('POST', path, { training_project_id: 'p' })).body.session).toMatchObject({ id: expect.any(String), training_project_id: 'p' });
    }
    const sid = (await loops('POST', '/v1/trainer_sessions')).body.session.id;
    const created = await loops('POST', `/v1/trainer_sessions/${sid}/trainers`, { model: MODEL });
    expect(created.status, created.text).toBe(200);
    const { trainer_server } = created.body;
    expect(trainer_server.base_url).toBe(`${ORIGIN}/loops/trainers/${trainer_server.id}`);
    expect(trainer_server.sampling_server).toEqual({ id: expect.any(String), base_url: `${ORIGIN}/loops/samplers/${trainer_server.sampling_server.id}`, model_id: null, deployment_id: null });
    expect((await loops('GET', `/v1/loops/runs/${trainer_server.id}`)).body.run.lora_rank).toBe(64);
    const sampler = await loops('POST', `/v1/trainer_sessions/${sid}/samplers`, { model: MODEL });
    expect(sampler.body.sampling_server).toMatchObject({ model_id: null, deployment_id: null });
    expectLoopsError(await loops('POST', '/v1/trainer_sessions/nope123/trainers', { model: MODEL }), 404, 'not_found');
    expectLoopsError(await loops('POST', `/v1/trainer_sessions/${sid}/trainers`, {}), 400, 'invalid_request', /model/);
  });

  it("list a trainer's checkpoints and their files, and search trainers and checkpoints", async () => {
    const sid = (await loops('POST', '/v1/trainer_sessions')).body.session.id;
    const { trainer_server } = (await loops('POST', `/v1/trainer_sessions/${sid}/trainers`, { model: MODEL })).body;
    const saved = await saveCheckpoint(api, await api.services.training.runs.get(actorOf('alice'), trainer_server.id), 'step-2');
    const listed = await loops('GET', `/v1/trainer_sessions/${sid}/trainers/${trainer_server.id}/checkpoints`);
    expect(listed.body.trainer_id).toBe(trainer_server.id);
    expectSdkCheckpoint(listed.body.checkpoints[0]);
    const files = await loops('GET', `/v1/trainer_sessions/${sid}/trainers/${trainer_server.id}/checkpoints/${saved.id}/files`);
    expect(files.body).toMatchObject({ total_count: 2, next_page_token: null });
    const otherSession = (await loops('POST', '/v1/trainer_sessions')).body.session.id;
    expectLoopsError(await loops('GET', `/v1/trainer_sessions/${otherSession}/trainers/${trainer_server.id}/checkpoints`), 404, 'not_found');
    const found = await loops('POST', '/v1/trainers/search', { trainer_id: trainer_server.id });
    expect(found.body.trainers.map((run: { id: string }) => run.id)).toEqual([trainer_server.id]);
    const byPath = await loops('POST', '/v1/trainers/checkpoints/search', { checkpoint_path: saved.path });
    expect(byPath.body.checkpoints.map((checkpoint: { id: string }) => checkpoint.id)).toEqual([saved.id]);
  });
});

describe('OpenAPI', () => {
  it('documents the control plane, its Loops error shape, and leaves the data plane out', async () => {
    const doc = (await api.request('GET', '/openapi.json', { key: ADMIN_KEY })).body;
    for (const [path, method] of [
      ['/v1/loops/sessions', 'post'],
      ['/v1/loops/trainers', 'post'],
      ['/v1/teams/{team_id}/loops/trainers', 'post'],
      ['/v1/loops/debug/samplers', 'post'],
      ['/v1/loops/runs/{run_id}/deactivate', 'post'],
      ['/v1/loops/checkpoints/{checkpoint_id}/files', 'get'],
      ['/v1/loops/deployments/{deployment_id}', 'get'],
      ['/v1/loops/capabilities', 'get'],
      ['/v1/teams', 'get'],
      ['/v1/trainer_sessions/{session_id}/trainers', 'post'],
    ]) {
      expect(doc.paths[path!]?.[method!], `${method} ${path}`).toBeDefined();
    }
    expect(doc.paths['/v1/trainer_sessions/{session_id}/trainers'].post.deprecated).toBe(true);
    expect(doc.paths['/v1/loops/trainers'].post.responses['404'].content['application/json'].schema.$ref).toBe('#/components/schemas/LoopsError');
    expect(doc.components.schemas.LoopsRunV1.required).toEqual(expect.arrayContaining(['id', 'base_url', 'base_model', 'deployment_id', 'sampler']));
    expect(Object.keys(doc.paths).some((path) => path.startsWith('/loops/'))).toBe(false);
    // Every documented error of every Loops route is in the Loops shape, the shared 401 and 413 included.
    const loopsPaths = Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>).filter(
      ([path]) => /^\/v1\/(loops|teams|trainer_sessions|trainers)(\/|$)/.test(path),
    );
    expect(loopsPaths.length).toBeGreaterThan(30);
    for (const [path, operations] of loopsPaths) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses).filter(([code]) => Number(code) >= 400)) {
          expect(response.content?.['application/json']?.schema.$ref, `${method} ${path} ${status}`).toBe('#/components/schemas/LoopsError');
        }
      }
    }
  });
});

/**
 * The official Loops SDK (`baseten-loops` 0.32.0 on PyPI, unchanged, in its own environment
 * test/clients/loops/.venv: `npm run setup`) against a real local server, the real engine and the
 * toy model: a LoRA run taught to answer in capitals by a supervised loop, its sampler, its
 * checkpoints, a run resumed from its state, a sampler from a checkpoint path, and deactivation.
 *
 * test/clients/loops/scenarios.py drives the SDK and records what each scenario observed; the
 * tests below judge it, and the SDK's own traffic recorder (LOOPS_REQUEST_LOG) gives the wire
 * exchange, checked too. When a test fails, the work dir with that recording and the SDK's log
 * is kept and its path printed.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BASE_MODEL, judgeScenario, runScenarioScript, startSdkServer, uppercaseShare, type Reply, type ScenarioResults, type SdkServer } from '../support/sdk-server.ts';

const LOOPS_CLIENT = join(import.meta.dirname, '..', 'clients', 'loops');
const PYTHON = join(LOOPS_CLIENT, '.venv', 'bin', 'python');
const KEY = 'loops-sdk-admin-key';
// About 1.5 minutes on two idle cores; much more when the whole suite shares them.
const SCENARIOS_TIMEOUT_MS = 420_000;

interface Exchange {
  method: string;
  url: string;
  /** Without its query. */
  path: string;
  headers: Record<string, string>;
  body: unknown;
  status: number;
  responseHeaders: Record<string, string>;
  responseBody: unknown;
}

let sdk: SdkServer | undefined;
let server: SdkServer['server'];
let requestLog: string;
let sdkLog: string;
let results: ScenarioResults = {};

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: create it with \`npm run setup\` (test/clients/loops/setup_env.sh).`);
  // Two trainers (the run and the one resumed from its state) and the sampler run at once.
  sdk = await startSdkServer({
    workDirPrefix: 'bakehouse-loops-sdk-',
    adminApiKey: KEY,
    engineConcurrency: 4,
    kept: (workDir) => `Loops SDK test files kept: ${requestLog} (the SDK's traffic), ${sdkLog} (its log), ${workDir}/results.json`,
  });
  server = sdk.server;
  requestLog = join(sdk.workDir, 'loops-requests.jsonl');
  sdkLog = join(sdk.workDir, 'sdk.log');
  const env = { ...process.env, LOOPS_BASE_URL: server.url, BASETEN_API_KEY: KEY, LOOPS_REQUEST_LOG: requestLog, HF_HUB_OFFLINE: '1' };
  results = await runScenarioScript(sdk, { python: PYTHON, script: join(LOOPS_CLIENT, 'scenarios.py'), dir: sdk.workDir, sdkLog, env, timeoutMs: SCENARIOS_TIMEOUT_MS, label: '' });
}, SCENARIOS_TIMEOUT_MS + 60_000);

beforeEach(({ onTestFailed }) => onTestFailed(() => sdk?.keep()));

afterAll(() => sdk?.close());

/** A scenario's observations; a failed or skipped one fails the test with the SDK's error. */
const scenario = (name: string) => judgeScenario(results, name, { label: '', sdkLog, details: `The SDK's traffic is recorded in ${requestLog}` });

/** The SDK's recording: one request line and one response line per exchange, paired by seq. */
function recordedExchanges(): Exchange[] {
  const lines = readFileSync(requestLog, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const lower = (headers: unknown) => Object.fromEntries(Object.entries((headers ?? {}) as Record<string, string>).map(([key, value]) => [key.toLowerCase(), value]));
  const responses = new Map(lines.filter((line) => line.kind === 'response').map((line) => [line.seq, line]));
  return lines
    .filter((line) => line.kind === 'request')
    .map((request) => {
      const response = responses.get(request.seq) ?? {};
      return {
        method: String(request.method),
        url: String(request.url),
        path: String(request.path).split('?')[0]!,
        headers: lower(request.headers),
        body: request.body,
        status: Number(response.status),
        responseHeaders: lower(response.headers),
        responseBody: response.body,
      };
    });
}

describe('the baseten-loops SDK environment', () => {
  it('imports baseten.loops 0.32.0', async () => {
    const { stdout } = await promisify(execFile)(PYTHON, [
      '-c',
      'import importlib.metadata, baseten.loops; print(importlib.metadata.version("baseten-loops"))',
    ]);
    expect(stdout.trim()).toBe('0.32.0');
  });
});

describe('the baseten-loops SDK against a local server, real engine, toy model', () => {
  it('provisions a LoRA training client', () => {
    const { run_id: runId, info } = scenario('provision') as { run_id: string; info: Record<string, unknown> };
    expect(runId).toMatch(/^[A-Za-z0-9]+$/);
    expect(info).toMatchObject({ model_name: BASE_MODEL, is_lora: true, lora_rank: 8 });
  });

  it('runs a supervised loop whose loss falls', () => {
    const loop = scenario('supervised_loop') as {
      losses: number[];
      trained_loss: number;
      optim_metrics: Record<string, number>[];
      loss_fn_output_type: string;
      logprob_shapes: { shape: number[]; input_length: number }[];
      datums: number;
    };
    expect(loop.losses).toHaveLength(16);
    const [first] = loop.losses;
    expect(first).toBeGreaterThan(1);
    expect(loop.losses.at(-1)).toBeLessThan(first! / 4);
    expect(loop.trained_loss).toBeLessThan(first! / 4);
    // One optimizer step per optim_step, counted from 1.
    expect(loop.optim_metrics.map((metrics) => metrics.step)).toEqual(Array.from({ length: 16 }, (_, index) => index + 1));
    expect(loop.optim_metrics[0]).toMatchObject({ learning_rate: 0.005, lr: 0.005 });
    expect(loop.optim_metrics[0]!.grad_norm).toBeGreaterThan(0);
    expect(loop.loss_fn_output_type).toBe('ArrayRecord');
    expect(loop.logprob_shapes).toHaveLength(loop.datums);
    for (const { shape, input_length: length } of loop.logprob_shapes) expect(shape).toEqual([length]);
  });

  it('samples the trained behaviour from save_weights_and_get_sampling_client, and not from the base model', () => {
    const trained = scenario('trained_sampler') as { checkpoint_path: string; replies: Reply[] };
    const base = scenario('base_sampler') as { replies: Reply[] };
    const runId = (scenario('provision') as { run_id: string }).run_id;
    expect(trained.checkpoint_path).toMatch(new RegExp(`^bt://loops:${runId}/sampler_weights/uppercase-[0-9a-f]{32}$`));
    for (const { reply, stop_reason: stop, tokens, logprobs } of [...trained.replies, ...base.replies]) {
      expect(reply.trim()).not.toBe('');
      expect(stop).toBe('stop');
      expect(logprobs).toBe(tokens);
    }
    expect(uppercaseShare(trained.replies), JSON.stringify(trained.replies)).toBeGreaterThanOrEqual(5 / 6);
    expect(uppercaseShare(base.replies), JSON.stringify(base.replies)).toBe(0);
  });

  it('computes prompt logprobs: the trained sampler agrees with the trainer and prefers the capitals', () => {
    const scored = scenario('compute_logprobs') as {
      tokens: number;
      trained: (number | null)[];
      base: (number | null)[];
      trainer: (number | null)[];
      answer_positions: [number, number];
    };
    for (const logprobs of [scored.trained, scored.base, scored.trainer]) {
      expect(logprobs).toHaveLength(scored.tokens);
      expect(logprobs[0]).toBeNull();
    }
    const [start, stop] = scored.answer_positions;
    let trained = 0;
    let base = 0;
    for (let position = 1; position < scored.tokens; position++) {
      expect(Math.abs(scored.trained[position]! - scored.trainer[position]!), `position ${position}`).toBeLessThan(0.02);
      if (position >= start && position < stop) {
        trained += scored.trained[position]!;
        base += scored.base[position]!;
      }
    }
    // The answer in capitals: likely after training, unlikely before.
    expect(trained).toBeGreaterThan(-5);
    expect(base).toBeLessThan(trained - 10);
  });

  it('saves state, lists checkpoints and downloads their files in the PEFT layout', () => {
    const runId = (scenario('provision') as { run_id: string }).run_id;
    const saved = scenario('save_state') as { path: string };
    expect(saved.path).toBe(`bt://loops:${runId}/weights/trained`);
    const samplerName = (scenario('trained_sampler') as { checkpoint_name: string }).checkpoint_name;
    const checkpoints = scenario('checkpoints') as {
      listed: Record<string, unknown>[];
      files: { names: string[]; total_count: number; next_page_token: number | null; sizes: Record<string, number> };
      downloads: Record<'trainer' | 'sampler', Record<string, unknown>>;
    };
    const expected = { run_id: runId, base_model: BASE_MODEL, lora_adapter_config: expect.objectContaining({ r: 8 }) };
    expect(checkpoints.listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ...expected, checkpoint_id: 'trained', target: 'trainer' }),
        expect.objectContaining({ ...expected, checkpoint_id: samplerName, target: 'sampler' }),
      ]),
    );
    expect(checkpoints.files.names).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
    expect(checkpoints.files.total_count).toBe(checkpoints.files.names.length);
    expect(checkpoints.files.next_page_token).toBeNull();
    for (const size of Object.values(checkpoints.files.sizes)) expect(size).toBeGreaterThan(0);
    for (const target of ['trainer', 'sampler'] as const) {
      const download = checkpoints.downloads[target];
      expect(download.files, target).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
      expect(download.config, target).toMatchObject({ peft_type: 'LORA', r: 8 });
      expect(download.tensors, target).toBeGreaterThan(0);
      expect(download.lora_a_ranks, target).toEqual([8]);
      expect(download.lora_b_ranks, target).toEqual([8]);
    }
  });

  it('resumes with create_training_client_from_state at the trained loss', () => {
    const { first_loss: resumed, trained_loss: trained } = scenario('resume') as { first_loss: number; trained_loss: number };
    const [baseLoss] = (scenario('supervised_loop') as { losses: number[] }).losses;
    expect(Math.abs(resumed - trained)).toBeLessThan(1e-3);
    expect(resumed).toBeLessThan(baseLoss! / 4);
  });

  it('samples the trained behaviour from a standalone sampler created from model_path', () => {
    const fromPath = scenario('model_path_sampler') as { base_model: string; replies: Reply[] };
    expect(fromPath.base_model).toBe(BASE_MODEL);
    expect(uppercaseShare(fromPath.replies), JSON.stringify(fromPath.replies)).toBeGreaterThanOrEqual(5 / 6);
  });

  it('deactivates a run: health answers 410 and a submit fails at once with the SDK error', () => {
    type Raised = { raised: string | null; status: number | null; headers: Record<string, string>; message: string; seconds?: number };
    const ended = scenario('deactivate') as { deactivate: { status: number; body: string }; health: Raised; submit: Raised };
    expect(ended.deactivate.status, ended.deactivate.body).toBe(200);
    expect(ended.health).toMatchObject({ raised: 'HTTPStatusError', status: 410 });
    expect(ended.health.headers['x-baseten-error-source']).toBe('06');
    expect(ended.submit).toMatchObject({ raised: 'HTTPStatusError', status: 410 });
    expect(ended.submit.headers['x-baseten-error-source']).toBe('06');
    // Raised, not retried for the SDK's hour.
    expect(ended.submit.seconds).toBeLessThan(30);
  });

  it("records an exchange with the SDK's headers, routes and statuses", () => {
    const runId = (scenario('provision') as { run_id: string }).run_id;
    const exchanges = recordedExchanges();
    const ours = exchanges.filter(({ url }) => url.startsWith(server.url));
    const trainerPath = `/loops/trainers/${runId}`;
    const find = (method: string, path: RegExp) => ours.filter((exchange) => exchange.method === method && path.test(exchange.path));

    // The files the /files answers presigned: fetched with their own signature, not the SDK's key.
    const presigned = new Set(
      find('GET', /^\/v1\/loops\/checkpoints\/[^/]+\/files$/).flatMap(
        ({ responseBody }) => (responseBody as { presigned_urls?: { url: string }[] }).presigned_urls?.map(({ url }) => url) ?? [],
      ),
    );
    expect(presigned.size).toBeGreaterThan(0);
    for (const exchange of ours) {
      const where = `${exchange.method} ${exchange.path}`;
      if (presigned.has(exchange.url)) {
        expect(exchange.headers.authorization, where).toBeUndefined();
        continue;
      }
      expect(exchange.headers['user-agent'], where).toBe('baseten-loops/0.32.0');
      expect(exchange.headers['x-baseten-accept-error'], where).toBe('1');
      expect(exchange.headers.authorization, where).toBe('Api-Key [REDACTED]');
      // Trainer requests name their run, the one in the path.
      const trainer = /^\/loops\/trainers\/([^/]+)\//.exec(exchange.path);
      if (trainer) expect(exchange.headers['x-run-id'], where).toBe(trainer[1]);
      // Only a trainer that is still starting answers 503; only a deactivated one 410.
      if (exchange.status >= 500) expect(`${where} ${exchange.status}`).toMatch(/\/health 503$/);
      if (exchange.status >= 400 && exchange.status !== 408 && exchange.status < 500) expect(exchange.status, where).toBe(410);
    }

    const statuses = (method: string, path: RegExp) => [...new Set(find(method, path).map(({ status }) => status))];
    expect(statuses('POST', /^\/v1\/loops\/sessions$/)).toEqual([200]);
    expect(statuses('POST', /^\/v1\/loops\/trainers$/)).toEqual([200]);
    expect(statuses('POST', /^\/v1\/loops\/samplers$/)).toEqual([200]);
    expect(statuses('GET', /^\/v1\/loops\/checkpoints$/)).toEqual([200]);
    expect(statuses('GET', /^\/v1\/loops\/checkpoints\/[^/]+\/files$/)).toEqual([200]);
    expect(statuses('GET', /^\/v1\/loops\/checkpoints\/[^/]+\/source$/)).toEqual([200]);
    expect(ours.filter(({ url }) => presigned.has(url)).map(({ status }) => status)).toEqual(expect.arrayContaining([200]));
    expect(ours.filter(({ url }) => presigned.has(url)).every(({ status }) => status === 200)).toBe(true);
    expect(statuses('GET', new RegExp(`^${trainerPath}/health$`))).toContain(200);
    for (const op of ['init_trainer_server', 'forward', 'optim_step', 'save_state', 'save_weights_for_sampler']) {
      expect(statuses('POST', new RegExp(`^${trainerPath}/${op}$`)), op).toEqual([202]);
    }
    expect(find('POST', new RegExp(`^${trainerPath}/forward_backward$`)).filter(({ status }) => status === 202)).toHaveLength(16);
    expect(statuses('POST', /^\/loops\/samplers\/[^/]+\/sample$/)).toEqual([202]);
    for (const path of [/^\/loops\/trainers\/[^/]+\/operations\/[^/]+$/, /^\/loops\/samplers\/[^/]+\/operations\/[^/]+$/]) {
      expect(statuses('GET', path).every((status) => status === 200 || status === 408), String(path)).toBe(true);
    }

    // Every accepted submit answers with its Idempotency-Key as the operation id.
    const submits = ours.filter(({ method, status }) => method === 'POST' && status === 202);
    expect(submits.length).toBeGreaterThan(16 * 2);
    for (const submit of submits) {
      expect(submit.responseBody, submit.path).toEqual({ operation_id: submit.headers['idempotency-key'], schema_version: 1 });
    }
  });
});

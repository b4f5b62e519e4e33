/**
 * The stock tinker SDK at 0.38.0, 0.25.0 and 0.16.1 (each unchanged, in its own environment:
 * `npm run setup`, test/clients/tinker/setup_env.sh) against one real local server at
 * `{origin}/tinker`, the real engine and the toy model: loops-api.md §2.14's minimal exchange for
 * every version — a LoRA run taught to answer in capitals by a supervised loop, its sampler, prompt
 * log-probs with top-k, its state saved and resumed, the REST client's listings (with the
 * archive download up to 0.37), and its checkpoint settings (publish, unpublish, time to live).
 * 0.38 also saves external weights and downloads them file by file, and its CLI's
 * `tinker checkpoint download` fetches the saved state; both downloads load with PEFT and answer
 * in capitals as the run learnt. 0.38 and 0.25 speak protobuf, 0.16.1 JSON.
 *
 * test/clients/tinker/scenarios.py drives each SDK and records what each scenario observed; the
 * tests below judge it. When a test fails, the work dir with the SDK's log is kept and its path
 * printed.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HELD_OUT_QUESTIONS, TEACHER_PROMPT, TOY_MODEL } from '#local/demo-recipe.ts';
import { DEFAULT_ENGINE_PYTHON } from '#local/server.ts';
import { BASE_MODEL, judgeScenario, runScenarioScript, startSdkServer, uppercaseShare, type Reply, type ScenarioResults, type SdkServer } from '../support/sdk-server.ts';
import { TINKER_CLIENT_DIR, TINKER_VERSIONS, tinkerPython, type TinkerVersion } from '#test/clients/tinker/environments.ts';

const KEY = 'tinker-sdk-admin-key';
const SCENARIOS_TIMEOUT_MS = 300_000;

let sdk: SdkServer | undefined;
const results: Partial<Record<TinkerVersion, ScenarioResults>> = {};

const versionDir = (version: TinkerVersion) => join(sdk!.workDir, version);
const sdkLog = (version: TinkerVersion) => join(versionDir(version), 'sdk.log');

async function runScenarios(version: TinkerVersion): Promise<void> {
  mkdirSync(versionDir(version), { recursive: true });
  const env = {
    ...process.env,
    TINKER_BASE_URL: `${sdk!.server.url}/tinker`,
    // The SDK refuses keys without its prefix; the gateway strips it.
    TINKER_API_KEY: `tml-${KEY}`,
    HF_HUB_OFFLINE: '1',
  };
  results[version] = await runScenarioScript(sdk!, {
    python: tinkerPython(version),
    script: join(TINKER_CLIENT_DIR, 'scenarios.py'),
    dir: versionDir(version),
    sdkLog: sdkLog(version),
    env,
    timeoutMs: SCENARIOS_TIMEOUT_MS,
    label: `tinker ${version}: `,
  });
}

beforeAll(async () => {
  for (const version of TINKER_VERSIONS) tinkerPython(version); // missing environments fail here, with the fix
  // Per version a run and its resumed twin, the shared sampler, and 0.38's CLI download run, all at once.
  sdk = await startSdkServer({
    workDirPrefix: 'bakehouse-tinker-sdk-',
    adminApiKey: KEY,
    engineConcurrency: 9,
    kept: (workDir) => `Tinker SDK test files kept: ${workDir} (per version: sdk.log, results.json)`,
  });
  // The three SDKs share the one server, as three users would.
  await Promise.all(TINKER_VERSIONS.map(runScenarios));
}, SCENARIOS_TIMEOUT_MS + 60_000);

beforeEach(({ onTestFailed }) => onTestFailed(() => sdk?.keep()));

afterAll(() => sdk?.close());

/** A scenario's observations; a failed or skipped one fails the test with the SDK's error. */
const scenario = (version: TinkerVersion, name: string) =>
  judgeScenario(results[version], name, { label: `tinker ${version}: `, sdkLog: sdkLog(version), details: `The SDK's log is ${sdkLog(version)}` });

describe.each(TINKER_VERSIONS)('the tinker %s SDK against a local server, real engine, toy model', (version) => {
  it('creates a LoRA training client whose model id is the session, train and its sequence number', () => {
    const made = scenario(version, 'provision') as { sdk_version: string; model_id: string; model_name: string; lora_rank: number; is_lora: boolean };
    expect(made.sdk_version).toBe(version);
    expect(made.model_id).toMatch(/^.+:train:0$/);
    expect(made).toMatchObject({ model_name: BASE_MODEL, lora_rank: 8, is_lora: true });
  });

  it('runs a supervised loop, forward_backward and optim_step submitted together, whose summed loss falls', () => {
    const loop = scenario(version, 'supervised_loop') as {
      losses: number[];
      trained_loss: number;
      metric_keys: string[];
      loss_fn_output_type: string;
      logprobs: { shape: number[]; dtype: string; targets: number }[];
      datums: number;
    };
    expect(loop.losses).toHaveLength(8);
    const [first] = loop.losses;
    // Summed over about 150 answer tokens, not averaged.
    expect(first).toBeGreaterThan(100);
    expect(loop.losses.at(-1)).toBeLessThan(first! / 4);
    expect(loop.trained_loss).toBeLessThan(first! / 4);
    expect(loop.metric_keys).toContain('loss:sum');
    for (const key of loop.metric_keys) expect(key.split(':')).toHaveLength(2);
    expect(loop.loss_fn_output_type).toBe('ArrayRecord');
    expect(loop.logprobs).toHaveLength(loop.datums);
    for (const { shape, dtype, targets } of loop.logprobs) {
      expect(shape).toEqual([targets]);
      expect(dtype).toBe('float32');
    }
  });

  it('samples the trained behaviour from save_weights_and_get_sampling_client, and not from the base model', () => {
    const trained = scenario(version, 'trained_sampler') as { replies: Reply[] };
    const base = scenario(version, 'base_sampler') as { replies: Reply[] };
    for (const { reply, stop_reason: stop, tokens, logprobs } of [...trained.replies, ...base.replies]) {
      expect(reply.trim()).not.toBe('');
      expect(stop).toBe('stop');
      expect(logprobs).toBe(tokens);
    }
    expect(uppercaseShare(trained.replies), JSON.stringify(trained.replies)).toBeGreaterThanOrEqual(3 / 4);
    expect(uppercaseShare(base.replies), JSON.stringify(base.replies)).toBe(0);
  });

  it('computes prompt log-probs that agree with the trainer, and the top-k of each prompt position', () => {
    const scored = scenario(version, 'compute_logprobs') as {
      tokens: number[];
      trained: (number | null)[];
      base: (number | null)[];
      trainer: (number | null)[];
      answer_positions: [number, number];
      sampled_prompt_logprobs: (number | null)[];
      topk_prompt_logprobs: ([number, number][] | null)[] | null;
    };
    const length = scored.tokens.length;
    for (const logprobs of [scored.trained, scored.base, scored.trainer, scored.sampled_prompt_logprobs]) {
      expect(logprobs).toHaveLength(length);
      expect(logprobs[0]).toBeNull();
    }
    const [start, stop] = scored.answer_positions;
    let trained = 0;
    let base = 0;
    for (let position = 1; position < length; position++) {
      expect(Math.abs(scored.trained[position]! - scored.trainer[position]!), `position ${position}`).toBeLessThan(0.02);
      expect(Math.abs(scored.sampled_prompt_logprobs[position]! - scored.trained[position]!), `position ${position}`).toBeLessThan(1e-4);
      if (position >= start && position < stop) {
        trained += scored.trained[position]!;
        base += scored.base[position]!;
      }
    }
    // The answer in capitals: likely after training, unlikely before.
    expect(trained).toBeGreaterThan(-5);
    expect(base).toBeLessThan(trained - 10);
    // Top 3 per position after the first, most likely first, the prompt's own token's log-prob
    // never above the best one.
    const topk = scored.topk_prompt_logprobs!;
    expect(topk).toHaveLength(length);
    expect(topk[0]).toBeNull();
    for (let position = 1; position < length; position++) {
      const row = topk[position]!;
      expect(row, `position ${position}`).toHaveLength(3);
      const logprobs = row.map(([, logprob]) => logprob);
      expect(logprobs).toEqual([...logprobs].sort((a, b) => b - a));
      expect(scored.trained[position]!).toBeLessThanOrEqual(logprobs[0]! + 1e-4);
      const listed = row.find(([token]) => token === scored.tokens[position]);
      if (listed) expect(Math.abs(listed[1] - scored.trained[position]!)).toBeLessThan(1e-4);
    }
  });

  it('saves state and resumes it with create_training_client_from_state at the trained loss', () => {
    const { model_id: modelId } = scenario(version, 'provision') as { model_id: string };
    expect((scenario(version, 'save_state') as { path: string }).path).toBe(`tinker://${modelId}/weights/trained`);
    const { first_loss: resumed, trained_loss: trainedLoss } = scenario(version, 'resume') as { first_loss: number; trained_loss: number };
    expect(Math.abs(resumed - trainedLoss)).toBeLessThan(1e-2);
  });

  it('lists the run and its checkpoints with the REST client' + (version === '0.38.0' ? '' : ', and downloads the sampler archive'), () => {
    const { model_id: modelId } = scenario(version, 'provision') as { model_id: string };
    const rest = scenario(version, 'rest') as {
      run_ids: string[];
      run: Record<string, unknown>;
      checkpoints: { checkpoint_id: string; checkpoint_type: string; tinker_path: string }[];
      archive?: { checkpoint_id: string; files: string[] };
    };
    expect(rest.run_ids).toContain(modelId);
    expect(rest.run).toEqual({ training_run_id: modelId, base_model: BASE_MODEL, is_lora: true, lora_rank: 8 });
    expect(rest.checkpoints).toEqual(
      expect.arrayContaining([{ checkpoint_id: 'weights/trained', checkpoint_type: 'training', tinker_path: `tinker://${modelId}/weights/trained` }]),
    );
    const sampler = rest.checkpoints.find(({ checkpoint_type: type }) => type === 'sampler');
    expect(sampler?.checkpoint_id).toMatch(/^sampler_weights\/.+/);
    expect(sampler?.tinker_path).toBe(`tinker://${modelId}/${sampler?.checkpoint_id}`);
    if (version === '0.38.0') expect(rest.archive).toBeUndefined();
    else expect(rest.archive?.files).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
  });

  it('publishes, unpublishes and gives a time to live to a checkpoint with the REST client’s own methods', () => {
    type Listed = { public: boolean; expires_at: string | null };
    type Refusal = { status: number | null; message?: string };
    const steps = scenario(version, 'checkpoint_settings') as {
      published: Listed;
      published_again: Listed;
      unpublished: Listed;
      ttl_set_at: number;
      expiring: Listed;
      ttl_too_short: Refusal;
      kept: Listed;
    };
    expect(steps.published).toEqual({ public: true, expires_at: null });
    expect(steps.published_again).toEqual({ public: true, expires_at: null });
    expect(steps.unpublished).toEqual({ public: false, expires_at: null });
    expect(steps.expiring.public).toBe(false);
    const ttlS = Date.parse(steps.expiring.expires_at!) / 1000 - steps.ttl_set_at;
    expect(ttlS).toBeGreaterThan(7200 - 60);
    expect(ttlS).toBeLessThan(7200 + 60);
    expect(steps.ttl_too_short).toEqual({ status: 400, message: expect.stringMatching(/^ttl_seconds: must be a whole number of seconds from 3600/) });
    expect(steps.kept).toEqual({ public: false, expires_at: null });
  });

  type AdapterFiles = { supported: boolean; dir: string; files: string[]; adapter_config: { peft_type: string; r: number }; tensors: number; lora_tensors: number };

  /** The files a download brings: a PEFT LoRA adapter of the run's rank, every tensor a LoRA one. */
  const expectAdapter = (download: AdapterFiles) => {
    expect(download.files).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(download.adapter_config).toEqual({ peft_type: 'LORA', r: 8 });
    expect(download.tensors).toBeGreaterThan(0);
    expect(download.lora_tensors).toBe(download.tensors);
  };

  it(version === '0.38.0' ? 'saves external weights, lists them, and downloads them file by file through signed URLs' : 'has no external weights before 0.38', () => {
    const external = scenario(version, 'external_weights') as AdapterFiles & { path: string; listed: Record<string, unknown>; urls_valid_s: number };
    if (version !== '0.38.0') {
      expect(external.supported).toBe(false);
      return;
    }
    const { model_id: modelId } = scenario(version, 'provision') as { model_id: string };
    expect(external.path).toBe(`tinker://${modelId}/external_weights/exported`);
    expect(external.listed).toEqual({ checkpoint_id: 'external_weights/exported', checkpoint_type: 'external', size_bytes: expect.any(Number) });
    expect(external.urls_valid_s).toBeGreaterThan(60);
    expectAdapter(external);
  });

  it(version === '0.38.0' ? 'downloads a saved state with `tinker checkpoint download`, leaving no temporary export behind' : 'has no CLI download before 0.38', () => {
    const cli = scenario(version, 'cli_download') as AdapterFiles & { printed: Record<string, unknown>; external_checkpoints: string[] };
    if (version !== '0.38.0') {
      expect(cli.supported).toBe(false);
      return;
    }
    const { model_id: modelId } = scenario(version, 'provision') as { model_id: string };
    expect(cli.printed).toMatchObject({ checkpoint_path: `tinker://${modelId}/weights/trained` });
    // Named as the CLI names it: the path without its scheme, slashes as underscores.
    expect(cli.dir.endsWith(join('cli_download', `${modelId}_weights_trained`)), cli.dir).toBe(true);
    expectAdapter(cli);
    expect(cli.external_checkpoints).toEqual([`tinker://${modelId}/external_weights/exported`]);
  });

  it('closes its session', () => {
    expect(scenario(version, 'close')).toMatchObject({ closed: version === '0.38.0' });
  });
});

describe('external weights downloaded from the tinker 0.38.0 SDK and its CLI', () => {
  const version = '0.38.0';

  it('load with PEFT onto the base model and answer as the run learnt: close to the capitals teacher, far closer than the base', async () => {
    const external = scenario(version, 'external_weights') as { dir: string };
    const cli = scenario(version, 'cli_download') as { dir: string };
    const questions = join(versionDir(version), 'held-out.json');
    writeFileSync(questions, JSON.stringify(HELD_OUT_QUESTIONS));
    const args = ['-m', 'bakehouse_engine', 'kl', '--base', TOY_MODEL, '--teacher-system', TEACHER_PROMPT, '--questions', questions];
    for (const candidate of ['base', `external=${external.dir}`, `cli=${cli.dir}`]) args.push('--candidate', candidate);
    const { stdout } = await promisify(execFile)(DEFAULT_ENGINE_PYTHON, args, { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
    const kl = JSON.parse(stdout) as Record<'base' | 'external' | 'cli', number>;
    // Measured: base 0.98, both downloads 0.0005.
    expect(kl.external).toBeLessThan(0.05 * kl.base);
    // The same trained weights by both paths.
    expect(Math.abs(kl.cli - kl.external)).toBeLessThan(1e-3 * kl.base);
  }, 120_000);
});

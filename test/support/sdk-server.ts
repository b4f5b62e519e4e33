/**
 * What the SDK end-to-end tests (test/e2e/loops-sdk.test.ts, test/e2e/tinker-sdk.test.ts) share:
 * an embedded local server on the real engine with an admin key, a work dir kept when a test
 * fails, an SDK's scenario script (test/clients/<sdk>/scenarios.py) run against it, and the
 * judging of what each scenario recorded.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { isUppercase } from '#local/demo-recipe.ts';
import { startLocalServer, type LocalServer } from '#local/server.ts';

export const BASE_MODEL = 'bakehouse/toy-instruct';
// The tokenizer is the toy model's own, read from the model cache the engine builds it in.
export const TOY_MODEL_DIR = join(process.env.BAKEHOUSE_MODEL_CACHE || join(homedir(), '.cache', 'bakehouse', 'models'), BASE_MODEL);

/** What a scenario recorded (test/clients/toy_scenarios.py). */
export type ScenarioResult = Record<string, unknown> & { ok: boolean; error?: string; traceback?: string; skipped?: string };
export type ScenarioResults = Record<string, ScenarioResult>;

/** A greedy reply to a held-out question. */
export interface Reply {
  question: string;
  reply: string;
  stop_reason: string;
  tokens: number;
  logprobs: number;
}

export interface SdkServer {
  server: LocalServer;
  workDir: string;
  /** Keeps the work dir after the tests, for a failure to be read. */
  keep(): void;
  /** Closes the server and removes the work dir, unless it is kept (then says what is there). */
  close(): Promise<void>;
}

/** Starts the server in a fresh work dir, its data below it; `kept` says what a kept dir holds. */
export async function startSdkServer(options: {
  workDirPrefix: string;
  adminApiKey: string;
  engineConcurrency: number;
  kept: (workDir: string) => string;
}): Promise<SdkServer> {
  const workDir = mkdtempSync(join(tmpdir(), options.workDirPrefix));
  let keepWorkDir = false;
  const sdk: SdkServer = {
    server: await startLocalServer({ port: 0, dataDir: join(workDir, 'data'), adminApiKey: options.adminApiKey, engineConcurrency: options.engineConcurrency, serve }),
    workDir,
    keep: () => {
      keepWorkDir = true;
    },
    close: async () => {
      await sdk.server.close();
      if (keepWorkDir) console.error(options.kept(workDir));
      else rmSync(workDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  return sdk;
}

/**
 * Runs a scenario script (`<python> <script> <toy model dir> <dir>`) and reads the results.json it
 * wrote in `dir`; its stderr goes to `sdkLog`. A script that does not finish keeps the work dir and
 * leaves what it recorded so far.
 */
export async function runScenarioScript(
  sdk: SdkServer,
  options: { python: string; script: string; dir: string; sdkLog: string; env: NodeJS.ProcessEnv; timeoutMs: number; label: string },
): Promise<ScenarioResults> {
  try {
    const { stderr } = await promisify(execFile)(options.python, [options.script, TOY_MODEL_DIR, options.dir], {
      env: options.env,
      timeout: options.timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    writeFileSync(options.sdkLog, stderr);
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    writeFileSync(options.sdkLog, stderr ?? String(error));
    sdk.keep();
    console.error(`${options.label}scenarios.py did not finish (${String(error).split('\n')[0]}); its log: ${options.sdkLog}`);
  }
  const resultsFile = join(options.dir, 'results.json');
  return existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as ScenarioResults) : {};
}

/**
 * A scenario's observations; a failed or skipped one fails the test with the SDK's error.
 * `label` starts each message; `sdkLog` and `details` say where to look.
 */
export function judgeScenario(results: ScenarioResults | undefined, name: string, where: { label: string; sdkLog: string; details: string }): Record<string, unknown> {
  const result = results?.[name];
  if (!result) throw new Error(`${where.label}scenario ${name} did not run; the SDK's log is ${where.sdkLog}`);
  if (!result.ok) {
    const why = result.skipped ? `was skipped: it ${result.skipped}` : `failed: ${result.error}\n${result.traceback ?? ''}`;
    throw new Error(`${where.label}scenario ${name} ${why}\n${where.details}`);
  }
  return result;
}

/** The share of replies in capitals: what the scenarios' runs teach. */
export const uppercaseShare = (replies: Reply[]) => replies.filter(({ reply }) => isUppercase(reply)).length / replies.length;

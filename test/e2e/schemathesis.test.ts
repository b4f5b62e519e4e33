/**
 * A bounded, seeded schemathesis run against a real local server's /openapi.json: every tested
 * operation must answer without a 5xx, with a documented status code and a body that matches its
 * documented response schema. Path names are mostly drawn from a repo the test sets up first
 * (test/clients/schemathesis.toml), so the requests reach the services rather than stopping at 404.
 * Jobs run on the stand-in engine (test/support/stand-in-engine.mjs); routes that start jobs are
 * left out of the run. schemathesis comes from test/clients/.venv (`npm run setup`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server.ts';
import { standInEngineCommand } from '#test/support/stand-in-engine-command.ts';

const CLIENTS = join(import.meta.dirname, '..', 'clients');
const SCHEMATHESIS = join(CLIENTS, '.venv', 'bin', 'schemathesis');
/** Fixed, so a failure reproduces with the same requests. */
const SEED = 1;
/** Test cases per operation and phase: with one worker, about a minute on two cores. */
const MAX_EXAMPLES = 5;

let server: LocalServer;
let dataDir: string;

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer;
}

/** Starts a job and waits for it to complete. */
async function runJob(path: string): Promise<void> {
  await call('POST', path);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { status } = await call('GET', path);
    if (status === 'complete') return;
    if (status === 'failed' || Date.now() > deadline) throw new Error(`${path} ended ${String(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The resources the path-name dictionaries in schemathesis.toml name, each job complete. */
async function createFixtures(): Promise<void> {
  const repo = '/v1/repo/fuzz_repo';
  await call('POST', '/v1/repo', { repo_name: 'fuzz_repo', base_model: 'bakehouse/toy-instruct' });
  await call('POST', `${repo}/prompts`, { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
  await call('POST', `${repo}/prompts`, { prompt_name: 'student', messages: [] });
  await call('POST', `${repo}/targets`, {
    target_name: 'fuzz_target',
    template: 'default',
    overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['What is bread?', 'Why bake?'] }] },
  });
  await runJob(`${repo}/targets/fuzz_target/stim`);
  await runJob(`${repo}/targets/fuzz_target/rollout`);
  await call('POST', `${repo}/bakes`, { bake_name: 'fuzz_bake', template: 'default', overrides: { datasets: [{ target: 'fuzz_target' }] } });
  await runJob(`${repo}/bakes/fuzz_bake`);
}

beforeAll(async () => {
  if (!existsSync(SCHEMATHESIS)) throw new Error(`${SCHEMATHESIS} is missing: create it with \`npm run setup\` (test/clients/setup_env.sh).`);
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-schemathesis-'));
  server = await startLocalServer({
    port: 0,
    dataDir: join(dataDir, 'server'),
    adminApiKey: 'schemathesis-admin-key',
    engineCommand: standInEngineCommand(),
    serve,
  });
  await createFixtures();
});

afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface RunOutcome {
  exitCode: number;
  output: string;
}

async function runSchemathesis(): Promise<RunOutcome> {
  const args = [
    '--config-file', join(CLIENTS, 'schemathesis.toml'),
    '--no-color',
    'run', `${server.url}/openapi.json`,
    '--header', `Authorization: Bearer ${server.adminApiKey}`,
    '--checks', 'not_a_server_error,status_code_conformance,response_schema_conformance',
    '--seed', String(SEED),
    '--max-examples', String(MAX_EXAMPLES),
    // One worker: the run stays reproducible, and leaves a core for the server.
    '--workers', '1',
  ];
  try {
    // The working directory takes schemathesis's and Hypothesis's own files.
    const { stdout } = await promisify(execFile)(SCHEMATHESIS, args, { cwd: dataDir, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 });
    return { exitCode: 0, output: stdout };
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: number; stdout?: string; stderr?: string };
    return { exitCode: typeof code === 'number' ? code : -1, output: `${stdout ?? ''}${stderr ?? ''}` };
  }
}

/** What the run reports, for the test log: operations, test cases and failures. */
function summary(output: string): string {
  const tested = output.match(/Tested: (\d+)/)?.[1];
  const selected = output.match(/Selected: (\d+\/\d+)/)?.[1];
  const cases = output.match(/Test cases:\s*\n\s*(.+)/)?.[1];
  const verdict = output.match(/=+ (.+ in [\d.]+s) =+\s*$/)?.[1];
  return `schemathesis: ${tested} operations tested (${selected} selected); test cases: ${cases}; ${verdict}`;
}

/** The failures and errors schemathesis printed, without the long tail of warnings. */
function failures(output: string): string {
  const start = output.search(/=+ (ERRORS|FAILURES) =+/);
  const end = output.search(/=+ (WARNINGS|SUMMARY) =+/);
  return (start === -1 ? output : output.slice(start, end === -1 ? undefined : end)).slice(0, 20_000);
}

describe('schemathesis against a local server', { timeout: 300_000 }, () => {
  it('finds no server error, undocumented status code or response off its schema', async () => {
    const { exitCode, output } = await runSchemathesis();
    console.log(summary(output));
    expect(exitCode, failures(output)).toBe(0);
    expect(Number(output.match(/Tested: (\d+)/)?.[1])).toBeGreaterThan(40);
  });
});

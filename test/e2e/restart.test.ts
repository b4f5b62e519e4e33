/**
 * The embedded runtime loses nothing across a crash (DESIGN.md §6): the server is killed (or
 * stopped) while a job runs and started again on the same data dir. An engine that outlived the
 * server finishes and is recorded; one that died with it fails with a reason; jobs that were
 * waiting for the engine slot run after the restart. Nothing stays `running`.
 * The engine here is a test stand-in (test/fixtures/slow-stim-engine.mjs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const KEY = 'restart-test-admin-key';
const ROOT = join(import.meta.dirname, '..', '..');
let dataDir: string;

interface Server {
  process: ChildProcess;
  url: string;
}

async function startServer(engineMs: number): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'functions/local/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      BAKEHOUSE_DATA_DIR: dataDir,
      BAKEHOUSE_API_KEY: KEY,
      BAKEHOUSE_ENGINE_COMMAND: JSON.stringify([process.execPath, join(ROOT, 'test/fixtures/slow-stim-engine.mjs')]),
      SLOW_ENGINE_MS: String(engineMs),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = seen.match(/listening on (http:\/\/\S+)/);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${seen}`)));
  });
  return { process: child, url };
}

/** SIGKILL as a crash would; SIGTERM for a clean stop. */
async function kill(server: Server, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
  const exited = new Promise((resolve) => server.process.once('exit', resolve));
  server.process.kill(signal);
  await exited;
}

async function call(server: Server, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await response.json()) as Record<string, unknown>;
}

async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function createTarget(server: Server, target: string) {
  await call(server, 'POST', '/v1/repo', { repo_name: 'r', base_model: 'bakehouse/toy-instruct' });
  await call(server, 'POST', '/v1/repo/r/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Be loud.' }] });
  await call(server, 'POST', '/v1/repo/r/prompts', { prompt_name: 'student', messages: [] });
  await call(server, 'POST', '/v1/repo/r/targets', {
    target_name: target,
    template: 'default',
    overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['a?', 'b?', 'c?'] }] },
  });
}

async function startStim(server: Server, target: string) {
  await createTarget(server, target);
  await call(server, 'POST', `/v1/repo/r/targets/${target}/stim`);
  // Running means the engine process has started.
  return until(
    () => call(server, 'GET', `/v1/repo/r/targets/${target}/stim`),
    (status) => status.status === 'running' && typeof status.progress_percent === 'number' && status.progress_percent > 0,
  );
}

/** The jobs the runtime handed to its engines (functions/adapters/embedded/local-process-compute.ts). */
function engineRecords(): { pid?: number }[] {
  const stateDir = join(dataDir, 'compute');
  return readdirSync(stateDir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => JSON.parse(readFileSync(join(stateDir, file), 'utf8')) as { pid?: number });
}

/** Engine processes the runtime recorded. */
function enginePids(): number[] {
  return engineRecords().flatMap((record) => (record.pid === undefined ? [] : [record.pid]));
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-restart-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('killing the local server mid-job', () => {
  it('records a job whose engine finished while the server was down as complete', async () => {
    let server = await startServer(4_000);
    const running = await startStim(server, 'survives');
    expect(running.status).toBe('running');
    await kill(server);

    server = await startServer(4_000);
    const final = await until(
      () => call(server, 'GET', '/v1/repo/r/targets/survives/stim'),
      (status) => status.status !== 'running',
    );
    expect(final).toMatchObject({ status: 'complete', lines: 3, progress_percent: 100, error: null });
    const page = await call(server, 'GET', '/v1/repo/r/targets/survives/stim/output?limit=2');
    expect((page.output as { stimulus_id: number }[]).map((line) => line.stimulus_id)).toEqual([0, 1]);
    await kill(server);
  });

  it('fails a job whose engine died with the server, with a reason, instead of leaving it running', async () => {
    let server = await startServer(30_000);
    await startStim(server, 'dies');
    const before = new Set(enginePids());
    await kill(server);
    for (const pid of before) {
      try {
        process.kill(-pid, 'SIGKILL'); // the engine's whole process group, as a machine crash would
      } catch {
        // already gone
      }
    }

    server = await startServer(30_000);
    const final = await until(
      () => call(server, 'GET', '/v1/repo/r/targets/dies/stim'),
      (status) => status.status !== 'running',
    );
    expect(final.status).toBe('failed');
    expect(final.error).toMatch(/\w+/);
    await kill(server);
  });
});

describe('stopping the local server with jobs waiting for its one engine slot', () => {
  it.each(['SIGKILL', 'SIGTERM'] as const)('runs every accepted job after a restart (%s)', async (signal) => {
    let server = await startServer(2_000);
    const targets = ['one', 'two', 'three', 'four'].map((name) => `${signal.toLowerCase()}-${name}`);
    for (const target of targets) await createTarget(server, target);
    for (const target of targets) await call(server, 'POST', `/v1/repo/r/targets/${target}/stim`);
    const stimOf = (target: string) => call(server, 'GET', `/v1/repo/r/targets/${target}/stim`);
    expect((await until(() => stimOf(targets[0]!), (status) => status.status === 'running')).status).toBe('running');
    // The first job holds the slot; the others wait for it (records without an engine pid).
    expect(engineRecords().filter((record) => record.pid === undefined).length).toBeGreaterThanOrEqual(2);
    await kill(server, signal);

    server = await startServer(200);
    const finals = await Promise.all(targets.map((target) => until(() => stimOf(target), (status) => status.status === 'complete' || status.status === 'failed')));
    expect(finals.map((status) => [status.status, status.error])).toEqual(targets.map(() => ['complete', null]));
    await kill(server);
  });
});

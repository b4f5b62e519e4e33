import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BatchClient,
  ClientException,
  DescribeJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
} from '@aws-sdk/client-batch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BatchCompute, computeEventFromBatch } from '#adapters/aws/batch-compute.ts';
import { LocalProcessCompute, type LocalProcessComputeOptions } from '#adapters/embedded/local-process-compute.ts';
import type { ComputeEvent, ComputeJob } from '#ports/compute.ts';
import type { JobKind, JobSpec } from '#schemas/job-spec.ts';
import { FakeBatch, type FakeBatchPlan } from '#test/support/fake-batch.ts';
import { describeComputeContract, newJobId, waitFor, type JobBehaviour } from './compute.contract.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const FAKE_ENGINE = [process.execPath, join(FIXTURES, 'fake-engine.mjs')];
const tempRoot = mkdtempSync(join(tmpdir(), 'bakehouse-compute-'));

/** Process groups the tests started, killed at the end whatever happened. */
const startedGroups = new Set<number>();
afterAll(() => {
  for (const pid of startedGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(tempRoot, { recursive: true, force: true });
});

interface FakeEngineBehaviour {
  exitCode?: number;
  sleepMs?: number;
  stderr?: string[];
  ignoreTerm?: boolean;
  grandchild?: boolean;
  env?: string[];
}

/** Writes a spec for the fake engine; `outputDir` is where it writes started.json and result.json. */
function writeJob(dir: string, kind: JobKind, fake: FakeEngineBehaviour): ComputeJob & { outputDir: string } {
  const jobId = newJobId();
  const jobDir = join(dir, 'jobs', `${jobId}-${randomUUID().slice(0, 8)}`);
  mkdirSync(jobDir, { recursive: true });
  const outputDir = join(jobDir, 'out');
  const spec = { version: 1, job_id: jobId, kind, output_uri: `${pathToFileURL(outputDir).href}/`, fake };
  const specPath = join(jobDir, 'spec.json');
  writeFileSync(specPath, JSON.stringify(spec));
  return { jobId, kind, specUri: pathToFileURL(specPath).href, spec: spec as unknown as JobSpec, outputDir };
}

function localCompute(stateDir: string, options: Partial<LocalProcessComputeOptions> = {}) {
  const events: ComputeEvent[] = [];
  const logs: Record<string, unknown>[] = [];
  const compute = new LocalProcessCompute({
    stateDir,
    engineCommand: FAKE_ENGINE,
    concurrency: 4,
    pollIntervalMs: 50,
    terminateGraceMs: 2_000,
    onEvent: async (event) => {
      events.push(event);
    },
    log: (entry) => logs.push(entry),
    ...options,
  });
  return { compute, events, logs };
}

/** The recorded state of a job, with the wrapper's pid (which is its process group). */
function record(stateDir: string, externalId: string): { pid?: number; reportedAt?: string } {
  const value = JSON.parse(readFileSync(join(stateDir, `${externalId}.json`), 'utf8')) as { pid?: number; reportedAt?: string };
  if (value.pid) startedGroups.add(value.pid);
  return value;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const finalOf = (events: ComputeEvent[], externalId: string) =>
  waitFor(() => events.find((event) => event.externalId === externalId && (event.state === 'succeeded' || event.state === 'failed')), 20_000, `final event of ${externalId}`);
const runningOf = (events: ComputeEvent[], externalId: string) =>
  waitFor(() => events.find((event) => event.externalId === externalId && event.state === 'running'), 10_000, `running event of ${externalId}`);

describeComputeContract('LocalProcessCompute (fake engine)', async () => {
  const dir = mkdtempSync(join(tempRoot, 'contract-'));
  const stateDir = join(dir, 'state');
  const events: ComputeEvent[] = [];
  const open = () => localCompute(stateDir, { onEvent: async (event) => void events.push(event) }).compute;
  let compute = open();
  return {
    compute,
    events,
    unknownId: 'bake-999999-0badf00d',
    job: async (kind, { exitCode, runMs, stderr }: JobBehaviour) => writeJob(dir, kind, { exitCode, sleepMs: runMs, stderr }),
    restart: async () => {
      await compute.close();
      compute = open();
      await compute.resume();
      return compute;
    },
    close: async () => {
      await compute.close();
      for (const name of readdirSync(stateDir).filter((file) => file.endsWith('.json'))) record(stateDir, name.slice(0, -5));
    },
  };
});

describeComputeContract('BatchCompute (fake Batch service)', async () => {
  const plans = new Map<string, FakeBatchPlan>();
  const fake = await FakeBatch.start({
    queues: ['gpu-queue', 'cpu-queue'],
    plan: (request) => plans.get(request.containerOverrides?.command?.[1] ?? ''),
  });
  const events: ComputeEvent[] = [];
  fake.onEvent((event) => {
    const computeEvent = computeEventFromBatch(JSON.parse(JSON.stringify(event)));
    if (computeEvent) events.push(computeEvent);
  });
  const open = () => new BatchCompute({ client: fake.client(), queues: { gpu: 'gpu-queue', cpu: 'cpu-queue' }, definitions: { gpu: 'gpu-def', cpu: 'cpu-def' } });
  return {
    compute: open(),
    events,
    unknownId: randomUUID(),
    job: async (kind, { exitCode, runMs = 5 }: JobBehaviour) => {
      const jobId = newJobId();
      const specUri = `s3://bakehouse-test/jobs/${jobId}/spec.json`;
      plans.set(specUri, { exitCode, runMs });
      return { jobId, kind, specUri, spec: { kind, job_id: jobId } as unknown as JobSpec };
    },
    // Batch keeps its own queue: a new client simply takes over.
    restart: async () => open(),
    close: () => fake.stop(),
  };
});

describe('LocalProcessCompute', () => {
  let dir: string;
  let stateDir: string;
  const opened: LocalProcessCompute[] = [];
  const make = (options: Partial<LocalProcessComputeOptions> = {}) => {
    const made = localCompute(stateDir, options);
    opened.push(made.compute);
    return made;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tempRoot, 'local-'));
  });
  afterEach(async () => {
    for (const compute of opened.splice(0)) await compute.close();
  });
  const freshState = () => {
    stateDir = join(dir, `state-${randomUUID().slice(0, 8)}`);
    return stateDir;
  };

  it('runs `<engineCommand> run <specUri>` with the given environment', async () => {
    freshState();
    const { compute, events } = make({ env: { BAKEHOUSE_TEST_VAR: 'from-the-server', HOME: undefined } });
    const job = writeJob(dir, 'stim', { env: ['BAKEHOUSE_TEST_VAR', 'HOME', 'PATH'] });
    const externalId = await compute.submit(job);
    expect(externalId).toMatch(new RegExp(`^stim-${job.jobId}-[0-9a-f]{8}$`));
    await finalOf(events, externalId);
    const started = JSON.parse(readFileSync(join(job.outputDir, 'started.json'), 'utf8'));
    expect(started.argv).toEqual(['run', job.specUri]);
    expect(started.env).toEqual({ BAKEHOUSE_TEST_VAR: 'from-the-server', HOME: null, PATH: process.env.PATH });
    expect(JSON.parse(readFileSync(join(job.outputDir, 'result.json'), 'utf8'))).toEqual({ status: 'complete', error: null });
  });

  it('runs at most `concurrency` engines, in submission order, the rest pending', async () => {
    freshState();
    const { compute, events } = make({ concurrency: 2 });
    const jobs = Array.from({ length: 5 }, () => writeJob(dir, 'rollout', { sleepMs: 300 }));
    const ids: string[] = [];
    for (const job of jobs) ids.push(await compute.submit(job));
    expect(await compute.describe(ids[4]!)).toEqual({ state: 'pending' });

    for (const id of ids) await finalOf(events, id);
    let active = 0;
    let peak = 0;
    for (const event of events) {
      active += event.state === 'running' ? 1 : -1;
      peak = Math.max(peak, active);
    }
    expect(peak).toBe(2);
    expect(events.filter((event) => event.state === 'running').map((event) => event.externalId)).toEqual(ids);
    expect(events.filter((event) => event.state === 'succeeded')).toHaveLength(5);
  });

  it.each([
    ['an absolute path', ['/nonexistent/batch/engine/.venv/bin/python', '-m', 'bakehouse_engine'], '/nonexistent/batch/engine/.venv/bin/python'],
    ['a name not on PATH', ['bakehouse-no-such-engine-binary'], 'bakehouse-no-such-engine-binary'],
  ])('fails a job at once when the engine is missing (%s), saying how to create it', async (_label, engineCommand, shown) => {
    freshState();
    const { compute, events } = make({ engineCommand });
    const externalId = await compute.submit(writeJob(dir, 'bake', {}));
    const final = await finalOf(events, externalId);
    expect(final.state).toBe('failed');
    expect(final.reason).toBe(
      `The engine environment is missing: ${shown} was not found or is not executable. ` +
        'Create it with `npm run setup` (it builds batch/engine/.venv), then retry the job.',
    );
    expect(final.failure).toEqual({ cause: 'engine_missing', exitCode: 127 });
    expect(events.filter((event) => event.externalId === externalId).map((event) => event.state)).toEqual(['failed']);
    expect(await compute.describe(externalId)).toEqual({ state: 'failed', reason: final.reason, failure: final.failure });
    expect(await make({ engineCommand }).compute.describe(externalId)).toEqual({ state: 'failed', reason: final.reason, failure: final.failure });
  });

  it('names the setup step when the engine package is not installed in the environment', async () => {
    freshState();
    const script = 'process.stderr.write("/x/.venv/bin/python: No module named bakehouse_engine\\n"); process.exit(1)';
    const { compute, events } = make({ engineCommand: [process.execPath, '-e', script] });
    const final = await finalOf(events, await compute.submit(writeJob(dir, 'stim', {})));
    expect(final.reason).toMatch(/engine environment is missing.*npm run setup.*\n.*No module named bakehouse_engine/s);
    expect(final.failure).toEqual({ cause: 'engine_missing', exitCode: 1 });
  });

  it('reports an engine killed by a signal with the signal, its stderr only as the operators\' reason', async () => {
    freshState();
    const script = 'process.stderr.write("bakehouse_engine INFO bake job 18 starting; output under file:///srv/jobs/18/\\n"); process.kill(process.pid, "SIGKILL")';
    const { compute, events } = make({ engineCommand: [process.execPath, '-e', script] });
    const final = await finalOf(events, await compute.submit(writeJob(dir, 'bake', {})));
    expect(final).toMatchObject({ state: 'failed', failure: { exitCode: 137, signal: 'SIGKILL' } });
    expect(final.reason).toContain('bakehouse_engine INFO bake job 18 starting');
  });

  it('keeps the last lines of stderr as the failure reason', async () => {
    freshState();
    const { compute, events } = make({ stderrTailLines: 3 });
    const stderr = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`);
    const final = await finalOf(events, await compute.submit(writeJob(dir, 'bake', { exitCode: 4, stderr })));
    expect(final.reason).toBe('line 28\nline 29\nline 30');
    expect(final.failure).toEqual({ exitCode: 4 });
  });

  it('says so when a failing engine wrote nothing to stderr', async () => {
    freshState();
    const { compute, events } = make();
    const final = await finalOf(events, await compute.submit(writeJob(dir, 'bake', { exitCode: 5 })));
    expect(final.reason).toBe('The engine exited with code 5 and wrote nothing to stderr');
  });

  it('terminate kills the whole process group, grandchildren included', async () => {
    freshState();
    const { compute, events } = make();
    const job = writeJob(dir, 'bake', { sleepMs: 30_000, grandchild: true });
    const externalId = await compute.submit(job);
    await runningOf(events, externalId);
    const { pid } = record(stateDir, externalId);
    const started = await waitFor(() => (existsSync(join(job.outputDir, 'started.json')) ? JSON.parse(readFileSync(join(job.outputDir, 'started.json'), 'utf8')) : undefined));
    expect(alive(started.grandchild)).toBe(true);

    await compute.terminate(externalId, 'Cancelled by the user');
    const final = await finalOf(events, externalId);
    expect(final).toEqual({
      externalId,
      jobId: job.jobId,
      state: 'failed',
      reason: 'Terminated: Cancelled by the user',
      failure: { cause: 'stopped', stoppedBecause: 'Cancelled by the user' },
    });
    await waitFor(() => !alive(started.grandchild) || undefined, 5_000, 'the grandchild to die');
    expect(alive(pid!)).toBe(false);
  });

  it('terminate escalates to SIGKILL when the engine ignores SIGTERM', async () => {
    freshState();
    const { compute, events } = make({ terminateGraceMs: 200 });
    const job = writeJob(dir, 'bake', { sleepMs: 30_000, ignoreTerm: true });
    const externalId = await compute.submit(job);
    await runningOf(events, externalId);
    await waitFor(() => existsSync(join(job.outputDir, 'started.json')) || undefined);
    await compute.terminate(externalId, 'stuck');
    expect(await finalOf(events, externalId)).toMatchObject({ state: 'failed', reason: 'Terminated: stuck' });
    expect(await compute.describe(externalId)).toEqual({ state: 'failed', reason: 'Terminated: stuck', failure: { cause: 'stopped', stoppedBecause: 'stuck' } });
  });

  it('starts samplers at once, outside the concurrency limit, and they do not hold up other jobs', async () => {
    freshState();
    const { compute, events } = make({ concurrency: 1 });
    const bake = await compute.submit(writeJob(dir, 'bake', { sleepMs: 30_000 }));
    await runningOf(events, bake);
    const sampler = await compute.submit(writeJob(dir, 'sampler', { sleepMs: 30_000 }));
    await runningOf(events, sampler);
    await compute.terminate(bake, 'done with it');
    await finalOf(events, bake);
    const rollout = await compute.submit(writeJob(dir, 'rollout', {}));
    expect(await finalOf(events, rollout)).toMatchObject({ state: 'succeeded' });
    await compute.terminate(sampler, 'cleanup');
    await finalOf(events, sampler);
  });

  it('terminate takes a queued job out of the queue before it starts', async () => {
    freshState();
    const { compute, events } = make({ concurrency: 1 });
    const first = await compute.submit(writeJob(dir, 'bake', { sleepMs: 30_000 }));
    const queuedJob = writeJob(dir, 'bake', {});
    const queued = await compute.submit(queuedJob);
    await runningOf(events, first);
    await compute.terminate(queued, 'not needed');
    const stopped = { reason: 'Terminated: not needed', failure: { cause: 'stopped', stoppedBecause: 'not needed' } };
    expect(await finalOf(events, queued)).toEqual({ externalId: queued, jobId: queuedJob.jobId, state: 'failed', ...stopped });
    expect(await compute.describe(queued)).toEqual({ state: 'failed', ...stopped });
    await compute.terminate(first, 'cleanup');
    await finalOf(events, first);
    expect(existsSync(join(queuedJob.outputDir, 'started.json'))).toBe(false);
  });

  it('is known after a restart: running, finished while down, still waiting; resume reports each once and runs the waiting', async () => {
    freshState();
    const before = make({ concurrency: 3 });
    const long = writeJob(dir, 'bake', { sleepMs: 3_000 });
    const quick = writeJob(dir, 'stim', { sleepMs: 200 });
    const failing = writeJob(dir, 'rollout', { sleepMs: 200, exitCode: 2, stderr: ['the stim output is empty'] });
    const never = writeJob(dir, 'bake', {});
    const ids = {
      long: await before.compute.submit(long),
      quick: await before.compute.submit(quick),
      failing: await before.compute.submit(failing),
      never: await before.compute.submit(never),
    };
    for (const id of [ids.long, ids.quick, ids.failing]) await runningOf(before.events, id);
    await before.compute.close(); // the server stops; its engines keep running
    const longPid = record(stateDir, ids.long).pid!;
    record(stateDir, ids.quick);
    record(stateDir, ids.failing);
    expect(alive(longPid)).toBe(true);

    const after = make();
    await waitFor(async () => ((await after.compute.describe(ids.failing)).state === 'failed' ? true : undefined), 10_000, 'failing to end');
    await waitFor(async () => ((await after.compute.describe(ids.quick)).state === 'succeeded' ? true : undefined), 10_000, 'quick to end');
    expect(await after.compute.describe(ids.quick)).toEqual({ state: 'succeeded' });
    expect(await after.compute.describe(ids.failing)).toEqual({ state: 'failed', reason: 'the stim output is empty', failure: { exitCode: 2 } });
    expect(await after.compute.describe(ids.long)).toEqual({ state: 'running' });
    expect(await after.compute.describe(ids.never)).toEqual({ state: 'pending' });

    expect(await after.compute.resume()).toEqual([ids.long]);
    await finalOf(after.events, ids.long);
    expect(await finalOf(after.events, ids.never)).toEqual({ externalId: ids.never, jobId: never.jobId, state: 'succeeded' });
    await waitFor(() => (after.events.length >= 5 ? true : undefined));
    expect(after.events.filter((event) => event.externalId === ids.never).map((event) => event.state)).toEqual(['running', 'succeeded']);
    expect(after.events.filter((event) => event.externalId !== ids.never).sort((a, b) => a.externalId.localeCompare(b.externalId))).toEqual(
      [
        { externalId: ids.quick, jobId: quick.jobId, state: 'succeeded' },
        { externalId: ids.failing, jobId: failing.jobId, state: 'failed', reason: 'the stim output is empty', failure: { exitCode: 2 } },
        { externalId: ids.long, jobId: long.jobId, state: 'succeeded' },
      ].sort((a, b) => a.externalId.localeCompare(b.externalId)),
    );
    expect(before.events.every((event) => event.state === 'running' && event.externalId !== ids.never)).toBe(true);
    await after.compute.close();

    const again = make();
    expect(await again.compute.resume()).toEqual([]);
    await again.compute.close();
    expect(again.events).toEqual([]);
  });

  it('runs the jobs still waiting at a stop after resume, in the order they were submitted, one slot still one engine', async () => {
    freshState();
    const before = make({ concurrency: 1 });
    const blocker = await before.compute.submit(writeJob(dir, 'bake', { sleepMs: 1_000 }));
    const waitingJobs = Array.from({ length: 3 }, () => writeJob(dir, 'stim', { sleepMs: 100 }));
    const waiting: string[] = [];
    for (const job of waitingJobs) waiting.push(await before.compute.submit(job));
    await runningOf(before.events, blocker);
    await before.compute.close();
    expect(waitingJobs.some((job) => existsSync(join(job.outputDir, 'started.json')))).toBe(false);

    const after = make({ concurrency: 1 });
    for (const id of waiting) expect(await after.compute.describe(id)).toEqual({ state: 'pending' });
    expect(await after.compute.resume()).toEqual([blocker]);
    for (const id of waiting) await finalOf(after.events, id);
    // Each starts once the one before it has ended, the engine left running by the stop first.
    expect(after.events.map((event) => `${event.state} ${event.externalId}`)).toEqual([
      `succeeded ${blocker}`,
      ...waiting.flatMap((id) => [`running ${id}`, `succeeded ${id}`]),
    ]);
  });

  it('answers a job submitted again while it waits or runs with the compute job it already has', async () => {
    freshState();
    const before = make({ concurrency: 1 });
    await runningOf(before.events, await before.compute.submit(writeJob(dir, 'bake', { sleepMs: 500 })));
    const job = writeJob(dir, 'stim', { sleepMs: 300 });
    const first = await before.compute.submit(job);
    // The server stops before the caller records the id; after the restart it submits the job again.
    await before.compute.close();

    const after = make({ concurrency: 1 });
    await after.compute.resume();
    expect(await after.compute.submit(job)).toBe(first);
    await runningOf(after.events, first);
    expect(await after.compute.submit(job)).toBe(first);
    await finalOf(after.events, first);
    expect(after.events.filter((event) => event.jobId === job.jobId).map((event) => `${event.state} ${event.externalId}`)).toEqual([
      `running ${first}`,
      `succeeded ${first}`,
    ]);
  });

  it('answers gone for a job whose engine was being started when the server stopped, and does not start it again', async () => {
    freshState();
    mkdirSync(stateDir, { recursive: true });
    const externalId = 'bake-424242-0a0b0c0d';
    const spawning = { externalId, jobId: 424242, kind: 'bake', specUri: 'file:///nowhere/spec.json', submittedAt: new Date().toISOString() };
    writeFileSync(join(stateDir, `${externalId}.json`), JSON.stringify(spawning));
    writeFileSync(join(stateDir, `${externalId}.stderr`), ''); // created just before the spawn
    const { compute, events } = make();
    expect(await compute.resume()).toEqual([]);
    expect(await compute.describe(externalId)).toMatchObject({ state: 'gone', reason: expect.stringContaining('while starting the engine') });
    await compute.close();
    expect(events).toEqual([]);
  });

  it('reports a job again on resume when its final event could not be delivered', async () => {
    freshState();
    const broken = make({
      onEvent: async (event) => {
        if (event.state !== 'running') throw new Error('store unavailable');
      },
    });
    const job = writeJob(dir, 'stim', {});
    const externalId = await broken.compute.submit(job);
    await waitFor(() => broken.logs.find((entry) => entry.msg === 'compute event handler failed'));
    await broken.compute.close();
    expect(record(stateDir, externalId).reportedAt).toBeUndefined();

    const after = make();
    await after.compute.resume();
    await waitFor(() => (after.events.length ? true : undefined));
    expect(after.events).toEqual([{ externalId, jobId: job.jobId, state: 'succeeded' }]);
    await after.compute.close();
    expect(record(stateDir, externalId).reportedAt).toEqual(expect.any(String));
  });

  it('answers gone, with the reason, for an engine killed without an exit code; a watched one fails', async () => {
    freshState();
    const before = make();
    const first = await before.compute.submit(writeJob(dir, 'bake', { sleepMs: 30_000 }));
    const second = await before.compute.submit(writeJob(dir, 'bake', { sleepMs: 30_000 }));
    await runningOf(before.events, first);
    await runningOf(before.events, second);
    await before.compute.close();

    process.kill(-record(stateDir, first).pid!, 'SIGKILL');
    const after = make();
    await waitFor(async () => ((await after.compute.describe(first)).state === 'gone' ? true : undefined), 5_000, 'gone');
    expect(await after.compute.describe(first)).toEqual({
      state: 'gone',
      reason: expect.stringMatching(/^The engine process \(pid \d+\) is gone without recording an exit code/),
      failure: { cause: 'vanished' },
    });

    expect(await after.compute.resume()).toEqual([second]);
    process.kill(-record(stateDir, second).pid!, 'SIGKILL');
    const final = await finalOf(after.events, second);
    expect(final).toMatchObject({ state: 'failed', reason: expect.stringMatching(/ended without recording an exit code/), failure: { cause: 'vanished' } });
    expect(after.events.some((event) => event.externalId === first)).toBe(false);
  });

  it('answers gone for ids it does not know or that are not its own', async () => {
    freshState();
    const { compute } = make();
    expect(await compute.describe('stim-1-00000000')).toMatchObject({ state: 'gone' });
    expect(await compute.describe('../../etc/passwd')).toMatchObject({ state: 'gone', reason: expect.stringContaining('not a local compute job id') });
    await compute.terminate('../../etc/passwd', 'x');
  });

  it('refuses work after close', async () => {
    freshState();
    const { compute } = make();
    await compute.close();
    await expect(compute.submit(writeJob(dir, 'stim', {}))).rejects.toThrow(/closed/);
  });
});

describe('BatchCompute', () => {
  let fake: FakeBatch;
  let compute: BatchCompute;
  beforeAll(async () => {
    fake = await FakeBatch.start({ queues: ['gpu-queue', 'cpu-queue'] });
    compute = new BatchCompute({
      client: fake.client(),
      queues: { gpu: 'gpu-queue', cpu: 'cpu-queue' },
      definitions: { gpu: 'gpu-def:3', cpu: 'cpu-def:3' },
    });
  });
  afterAll(() => fake?.stop());

  const job = (kind: JobKind, jobId = newJobId()): ComputeJob => ({
    jobId,
    kind,
    specUri: `s3://artifacts/jobs/${jobId}/spec.json`,
    spec: {} as JobSpec,
  });

  it.each([
    ['stim', 'cpu-queue', 'cpu-def:3'],
    ['rollout', 'gpu-queue', 'gpu-def:3'],
    ['bake', 'gpu-queue', 'gpu-def:3'],
  ] as const)('submits %s jobs to %s with %s, named and tagged with the job id', async (kind, queue, definition) => {
    const submitted = job(kind, 77);
    const externalId = await compute.submit(submitted);
    expect(fake.jobs.get(externalId)).toBeDefined();
    expect(fake.requests.at(-1)).toEqual({
      operation: 'submitjob',
      body: {
        jobName: `bakehouse-${kind}-77`,
        jobQueue: queue,
        jobDefinition: definition,
        containerOverrides: { command: ['run', submitted.specUri] },
        tags: { 'bakehouse:job-id': '77' },
        propagateTags: true,
      },
    });
  });

  it.each([
    ['SUBMITTED', 'pending'],
    ['PENDING', 'pending'],
    ['RUNNABLE', 'pending'],
    ['STARTING', 'pending'],
    ['RUNNING', 'running'],
    ['SUCCEEDED', 'succeeded'],
  ] as const)('describes %s as %s', async (status, state) => {
    const externalId = await compute.submit(job('bake'));
    fake.setStatus(externalId, status);
    expect(await compute.describe(externalId)).toEqual({ state });
  });

  it.each([
    [
      'the job reason, the container reason and the exit code',
      { statusReason: 'Essential container in task exited', container: { image: 'x', command: [], reason: 'OutOfMemoryError: Container killed due to memory usage', exitCode: 137 } },
      'Essential container in task exited: OutOfMemoryError: Container killed due to memory usage (exit code 137)',
      { cause: 'out_of_memory', exitCode: 137 },
    ],
    [
      'the exit code alone',
      { statusReason: 'Essential container in task exited', container: { image: 'x', command: [], exitCode: 1 } },
      'Essential container in task exited (exit code 1)',
      { exitCode: 1 },
    ],
    [
      'the exit code of a container killed by a signal',
      { statusReason: 'Essential container in task exited', container: { image: 'x', command: [], exitCode: 137 } },
      'Essential container in task exited (exit code 137)',
      { exitCode: 137 },
    ],
    [
      'the terminate reason',
      { statusReason: 'Cancelled by the user', container: { image: 'x', command: [] } },
      'Cancelled by the user',
      { cause: 'stopped', stoppedBecause: 'Cancelled by the user' },
    ],
    [
      'the last attempt when the container block is bare',
      { statusReason: 'Host EC2 (instance i-0abc) terminated.', container: { image: 'x', command: [] }, attempts: [{ container: { reason: 'Host EC2 (instance i-0abc) terminated.' } }] },
      'Host EC2 (instance i-0abc) terminated.',
      { cause: 'host_lost' },
    ],
    ['a fallback when Batch gives none', { container: { image: 'x', command: [] } }, 'AWS Batch reported the job as failed without a reason', {}],
  ])('describes FAILED with %s', async (_label, patch, reason, failure) => {
    const externalId = await compute.submit(job('bake'));
    fake.setStatus(externalId, 'FAILED', patch);
    expect(await compute.describe(externalId)).toEqual({ state: 'failed', reason, failure });
  });

  it('describes a job Batch does not know as gone', async () => {
    expect(await compute.describe(randomUUID())).toEqual({ state: 'gone', reason: expect.stringMatching(/no record of job/) });
  });

  it('terminates with the reason', async () => {
    const externalId = await compute.submit(job('bake'));
    fake.setStatus(externalId, 'RUNNING');
    await compute.terminate(externalId, 'Cancelled by the user');
    expect(fake.requests.at(-1)).toEqual({ operation: 'terminatejob', body: { jobId: externalId, reason: 'Cancelled by the user' } });
    await waitFor(async () => ((await compute.describe(externalId)).state === 'failed' ? true : undefined));
  });

  it('surfaces a ClientException from Batch (an unknown job queue)', async () => {
    const misconfigured = new BatchCompute({
      client: fake.client(),
      queues: { gpu: 'no-such-queue', cpu: 'cpu-queue' },
      definitions: { gpu: 'gpu-def', cpu: 'cpu-def' },
    });
    const error = await misconfigured.submit(job('bake')).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(ClientException);
    expect((error as Error).message).toBe('JobQueue no-such-queue not found.');
  });

  it('rides out throttling through the SDK’s retries', async () => {
    const externalId = await compute.submit(job('stim'));
    const before = fake.requests.length;
    fake.throttle(2, 'describejobs');
    expect(await compute.describe(externalId)).toEqual({ state: 'pending' });
    expect(fake.requests.length - before).toBe(3);
  });

  it('surfaces throttling once the SDK’s retries are spent', async () => {
    const externalId = await compute.submit(job('stim'));
    const before = fake.requests.length;
    fake.throttle(100, 'describejobs');
    try {
      const error = (await compute.describe(externalId).catch((failure: unknown) => failure)) as Error & { $metadata?: { attempts?: number } };
      expect(error.name).toBe('ThrottlingException');
      expect(error.$metadata?.attempts).toBe(3);
      expect(fake.requests.length - before).toBe(3);
    } finally {
      fake.throttle(0);
    }
  });
});

describe('BatchCompute error paths (aws-sdk-client-mock)', () => {
  const client = new BatchClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const mock = mockClient(client);
  const compute = new BatchCompute({ client, queues: { gpu: 'g', cpu: 'c' }, definitions: { gpu: 'gd', cpu: 'cd' } });
  afterEach(() => mock.reset());
  afterAll(() => {
    mock.restore();
    client.destroy();
  });
  const job: ComputeJob = { jobId: 5, kind: 'bake', specUri: 's3://a/jobs/5/spec.json', spec: {} as JobSpec };
  const clientException = (message: string) => new ClientException({ message, $metadata: { httpStatusCode: 400 } });

  it('propagates a ClientException from SubmitJob', async () => {
    mock.on(SubmitJobCommand).rejects(clientException('Job definition gd is INACTIVE'));
    await expect(compute.submit(job)).rejects.toBeInstanceOf(ClientException);
  });

  it('propagates a ClientException from TerminateJob', async () => {
    mock.on(TerminateJobCommand).rejects(clientException('Job abc not found'));
    await expect(compute.terminate('abc', 'x')).rejects.toThrow('Job abc not found');
  });

  it('propagates a throttling error the client gives up on', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 429, attempts: 3 } });
    mock.on(DescribeJobsCommand).rejects(throttled);
    await expect(compute.describe('abc')).rejects.toBe(throttled);
  });

  it('fails a submit that returns no job id', async () => {
    mock.on(SubmitJobCommand).resolves({ jobName: 'bakehouse-bake-5' } as never);
    await expect(compute.submit(job)).rejects.toThrow(/returned no job id/);
  });

  it('reads an empty DescribeJobs answer as gone', async () => {
    mock.on(DescribeJobsCommand).resolves({ jobs: [] });
    expect(await compute.describe('abc')).toMatchObject({ state: 'gone' });
  });

  it('reads an unknown status as pending, saying so', async () => {
    mock.on(DescribeJobsCommand).resolves({ jobs: [{ jobId: 'abc', status: 'HIBERNATING' as never, jobName: 'n', jobQueue: 'q', jobDefinition: 'd', startedAt: 0 }] });
    expect(await compute.describe('abc')).toEqual({ state: 'pending', reason: expect.stringContaining('HIBERNATING') });
  });

  it('caps the terminate reason at 1024 characters', async () => {
    mock.on(TerminateJobCommand).resolves({});
    await compute.terminate('abc', 'x'.repeat(5000));
    expect(mock.commandCalls(TerminateJobCommand)[0]!.args[0].input).toEqual({ jobId: 'abc', reason: 'x'.repeat(1024) });
  });
});

describe('computeEventFromBatch', () => {
  const fixture = (name: string): unknown => JSON.parse(readFileSync(join(FIXTURES, 'batch-events', name), 'utf8'));

  it.each([
    ['runnable-stim.json', { externalId: '0b5d1e1a-3f54-4c8e-9a55-7f1c1d2e3a40', jobId: 41, state: 'pending' }],
    ['running-bake.json', { externalId: '7c2a9f3e-1b4d-4e6a-8f0c-2d3e4f5a6b7c', jobId: 57, state: 'running' }],
    ['succeeded-rollout.json', { externalId: '3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7', jobId: 43, state: 'succeeded' }],
    [
      'failed-bake-oom.json',
      {
        externalId: '9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a',
        jobId: 58,
        state: 'failed',
        reason: 'Essential container in task exited: OutOfMemoryError: Container killed due to memory usage (exit code 137)',
        failure: { cause: 'out_of_memory', exitCode: 137 },
      },
    ],
    [
      'failed-rollout-terminated.json',
      {
        externalId: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
        jobId: 44,
        state: 'failed',
        reason: 'Cancelled by the user',
        failure: { cause: 'stopped', stoppedBecause: 'Cancelled by the user' },
      },
    ],
    [
      'failed-bake-spot-untagged.json',
      {
        externalId: '6f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c',
        jobId: 59,
        state: 'failed',
        reason: 'Host EC2 (instance i-0a1b2c3d4e5f6a7b8) terminated.',
        failure: { cause: 'host_lost' },
      },
    ],
    ['other-job.json', undefined],
  ])('reads %s', (name, expected) => {
    expect(computeEventFromBatch(fixture(name))).toEqual(expected);
  });

  it('covers every recorded fixture', () => {
    expect(readdirSync(join(FIXTURES, 'batch-events')).sort()).toHaveLength(7);
  });

  const running = fixture('running-bake.json') as { detail: Record<string, unknown> } & Record<string, unknown>;
  const withDetail = (detail: Record<string, unknown>) => ({ ...running, detail: { ...running.detail, ...detail } });

  it.each([
    ['null', null],
    ['a string', 'Batch Job State Change'],
    ['an array', [running]],
    ['an event without detail', { ...running, detail: undefined }],
    ['another source', { ...running, source: 'aws.ecs' }],
    ['another detail type', { ...running, 'detail-type': 'Batch Service Job State Change' }],
    ['a status Batch may add later', withDetail({ status: 'HIBERNATING' })],
    ['no status', withDetail({ status: undefined })],
    ['no Batch job id', withDetail({ jobId: undefined })],
    ['neither our tag nor our name', withDetail({ tags: { team: 'x' }, jobName: 'bakehouse-bake-x' })],
    ['a job id of 0', withDetail({ tags: {}, jobName: 'bakehouse-bake-0' })],
  ])('ignores %s', (_label, event) => {
    expect(computeEventFromBatch(event)).toBeUndefined();
  });

  it('tolerates unknown fields and missing optional ones', () => {
    const minimal = { source: 'aws.batch', 'detail-type': 'Batch Job State Change', detail: { jobId: 'j-1', jobName: 'bakehouse-stim-3', status: 'FAILED', futureField: { x: 1 } } };
    expect(computeEventFromBatch(minimal)).toEqual({
      externalId: 'j-1',
      jobId: 3,
      state: 'failed',
      reason: 'AWS Batch reported the job as failed without a reason',
      failure: {},
    });
    expect(computeEventFromBatch(withDetail({ container: null, attempts: 'odd', tags: null }))).toMatchObject({ jobId: 57, state: 'running' });
  });

  it('prefers the tag over the name', () => {
    expect(computeEventFromBatch(withDetail({ tags: { 'bakehouse:job-id': '12' }, jobName: 'bakehouse-bake-13' }))).toMatchObject({ jobId: 12 });
  });
});

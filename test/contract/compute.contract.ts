/**
 * The Compute contract: what every adapter must do, run against each of them (compute.test.ts).
 * Each fixture runs jobs as told (local: a fake engine process; Batch: a fake Batch service) and
 * collects the state events the platform delivers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Compute, ComputeEvent, ComputeJob } from '#ports/compute.ts';
import type { JobKind } from '#schemas/job-spec.ts';

export interface JobBehaviour {
  exitCode: number;
  /** How long the job runs; default a few ms. */
  runMs?: number;
  /** Lines the engine writes to stderr before it ends. */
  stderr?: string[];
}

export interface ComputeFixture {
  compute: Compute;
  /** A job the platform will run as `behaviour` says. */
  job(kind: JobKind, behaviour: JobBehaviour): Promise<ComputeJob>;
  /** Events delivered so far, in order. */
  events: ComputeEvent[];
  /** A well-formed id the platform never issued. */
  unknownId: string;
  /**
   * Stops this adapter as a server stop would and opens another on the same platform state,
   * which takes over (its events land in `events` too); the jobs already submitted carry on.
   */
  restart(): Promise<Compute>;
  close(): Promise<void>;
}

let nextJobId = 1000;
export const newJobId = () => nextJobId++;

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const FINAL = new Set(['succeeded', 'failed']);

export function describeComputeContract(name: string, makeFixture: () => Promise<ComputeFixture>): void {
  describe(`Compute contract: ${name}`, () => {
    let fixture: ComputeFixture;
    let compute: Compute;
    beforeAll(async () => {
      fixture = await makeFixture();
      compute = fixture.compute;
    });
    afterAll(async () => {
      await fixture?.close();
    });

    const eventsOf = (externalId: string) => fixture.events.filter((event) => event.externalId === externalId);
    const finalEvent = (externalId: string) =>
      waitFor(() => eventsOf(externalId).find((event) => FINAL.has(event.state)), 20_000, `the final event of ${externalId}`);

    it.each<JobKind>(['stim', 'rollout', 'bake'])('runs a %s job to success, reporting running then succeeded', async (kind) => {
      const job = await fixture.job(kind, { exitCode: 0, runMs: 50 });
      const externalId = await compute.submit(job);
      expect(externalId).toMatch(/\S/);

      const final = await finalEvent(externalId);
      expect(final).toEqual({ externalId, jobId: job.jobId, state: 'succeeded' });
      const states = eventsOf(externalId).map((event) => event.state);
      expect(states.indexOf('running')).toBeGreaterThanOrEqual(0);
      expect(states.indexOf('running')).toBeLessThan(states.indexOf('succeeded'));
      expect(eventsOf(externalId).every((event) => event.jobId === job.jobId)).toBe(true);
      expect(await compute.describe(externalId)).toEqual({ state: 'succeeded' });
    });

    it('reports a failed job with the same reason and facts in its event and in describe', async () => {
      const job = await fixture.job('bake', { exitCode: 3, stderr: ['loading model', 'The base model could not be loaded'] });
      const externalId = await compute.submit(job);
      const final = await finalEvent(externalId);
      expect(final).toMatchObject({ externalId, jobId: job.jobId, state: 'failed', reason: expect.stringMatching(/\S/), failure: { exitCode: 3 } });
      expect(await compute.describe(externalId)).toEqual({ state: 'failed', reason: final.reason, failure: final.failure });
    });

    it('reports the exit code of an engine killed by a signal (128 + n)', async () => {
      const job = await fixture.job('bake', { exitCode: 137 });
      const final = await finalEvent(await compute.submit(job));
      expect(final).toMatchObject({ state: 'failed', failure: { exitCode: 137 } });
    });

    it('describes a job as pending or running before it ends, then running', async () => {
      const job = await fixture.job('rollout', { exitCode: 0, runMs: 3_000 });
      const externalId = await compute.submit(job);
      expect(['pending', 'running']).toContain((await compute.describe(externalId)).state);
      await waitFor(() => eventsOf(externalId).some((event) => event.state === 'running') || undefined, 10_000, 'running');
      expect(await compute.describe(externalId)).toEqual({ state: 'running' });
      await finalEvent(externalId);
    });

    it('terminates a running job: it fails with the reason given', async () => {
      const job = await fixture.job('bake', { exitCode: 0, runMs: 30_000 });
      const externalId = await compute.submit(job);
      await waitFor(() => eventsOf(externalId).some((event) => event.state === 'running') || undefined, 10_000, 'running');
      await compute.terminate(externalId, 'Cancelled by the user');

      const final = await finalEvent(externalId);
      expect(final).toMatchObject({ state: 'failed', reason: expect.stringContaining('Cancelled by the user'), failure: { cause: 'stopped', stoppedBecause: 'Cancelled by the user' } });
      expect(await compute.describe(externalId)).toMatchObject({ state: 'failed', reason: expect.stringContaining('Cancelled by the user') });
    });

    it('leaves a finished job alone when asked to terminate it', async () => {
      const job = await fixture.job('stim', { exitCode: 0 });
      const externalId = await compute.submit(job);
      await finalEvent(externalId);
      await compute.terminate(externalId, 'too late');
      expect(await compute.describe(externalId)).toEqual({ state: 'succeeded' });
    });

    it('keeps jobs still waiting for a slot across a restart of the adapter, then runs them', async () => {
      // More jobs than the local fixture's slots, so that some are still waiting at the restart.
      const jobs = await Promise.all(Array.from({ length: 6 }, () => fixture.job('stim', { exitCode: 0, runMs: 1_000 })));
      const ids: string[] = [];
      for (const job of jobs) ids.push(await compute.submit(job));
      const states = await Promise.all(ids.map(async (id) => (await compute.describe(id)).state));
      expect(states).toContain('pending');

      compute = await fixture.restart();
      for (const id of ids) expect(await finalEvent(id)).toMatchObject({ externalId: id, state: 'succeeded' });
      for (const id of ids) expect(await compute.describe(id)).toEqual({ state: 'succeeded' });
    });

    it('describes an id it never issued as gone, with a reason', async () => {
      expect(await compute.describe(fixture.unknownId)).toEqual({ state: 'gone', reason: expect.stringMatching(/\S/) });
    });
  });
}

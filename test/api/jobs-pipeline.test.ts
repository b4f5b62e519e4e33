/**
 * The job flow's guarantees (DESIGN.md §1): dispatch claims before it submits, compute events
 * are applied monotonically, and the reconciler re-sends lost messages and fails jobs whose
 * compute job is gone. Driven through `services.pipeline`, observed through the API.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keys } from '#core/keys.ts';
import { createTarget, createTestApp, POLL, seedTarget, waitForJob, waitUntilRunning, type TestApp } from '#test/support/app.ts';

const STIM = '/v1/repo/r1/targets/t1/stim';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

const submissions = (jobId: number) => api.jobs.compute.submitted.filter((job) => job.jobId === jobId);

/** Starts stim with its queue message lost: the job stays queued until dispatched by hand. */
async function startWithLostMessage(): Promise<number> {
  vi.spyOn(api.jobs.queue, 'send').mockResolvedValueOnce(undefined);
  const started = await api.request('POST', STIM);
  expect(started.body).toMatchObject({ status: 'running', progress_percent: 0 });
  return started.body.job_id as number;
}

async function runStim(): Promise<number> {
  await api.request('POST', STIM);
  const done = await waitForJob(api.request, STIM);
  expect(done.body.status).toBe('complete');
  return done.body.job_id as number;
}

describe('dispatch', () => {
  it('submits a job once however often its message is delivered', async () => {
    const jobId = await startWithLostMessage();
    expect(api.jobs.compute.submitted).toEqual([]);

    await Promise.all([api.services.pipeline.dispatch(jobId), api.services.pipeline.dispatch(jobId)]);
    await api.services.pipeline.dispatch(jobId);
    expect(submissions(jobId)).toHaveLength(1);
    expect((await waitForJob(api.request, STIM)).body).toMatchObject({ status: 'complete', job_id: jobId });

    await api.services.pipeline.dispatch(jobId);
    expect(submissions(jobId)).toHaveLength(1);
  });

  it('ignores a message for a job that does not exist', async () => {
    await api.services.pipeline.dispatch(987_654);
    expect(api.jobs.compute.submitted).toEqual([]);
  });

  it('stops the compute job when the target was deleted while it was being submitted', async () => {
    let finishSubmit!: (externalId: string) => void;
    const submit = vi.spyOn(api.jobs.compute, 'submit').mockReturnValueOnce(new Promise<string>((resolve) => (finishSubmit = resolve)));
    await api.request('POST', STIM);
    await vi.waitFor(() => expect(submit).toHaveBeenCalledTimes(1), POLL);

    expect((await api.request('DELETE', '/v1/repo/r1/targets/t1')).status).toBe(200);
    finishSubmit('orphan-1');
    await api.jobs.queue.drain();
    expect(api.jobs.compute.terminated).toEqual(['orphan-1']);
  });

  it('fails the job with the reason when compute refuses the submit', async () => {
    vi.spyOn(api.jobs.compute, 'submit').mockRejectedValueOnce(new Error('Job queue bakehouse-cpu is DISABLED'));
    await api.request('POST', STIM);
    const failed = await waitForJob(api.request, STIM);
    expect(failed.body).toMatchObject({ status: 'failed', error: 'The job could not be started: Job queue bakehouse-cpu is DISABLED' });
  });
});

describe('compute events', () => {
  it('never moves a complete job back to running or failed', async () => {
    const jobId = await runStim();
    const before = (await api.request('GET', STIM)).body;

    const running = await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'running' });
    expect(running).toMatchObject({ state: 'complete' });
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'failed', reason: 'late event' });
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'pending' });
    expect((await api.request('GET', STIM)).body).toEqual(before);
  });

  it('never moves a failed job to complete', async () => {
    api.jobs.compute.script = () => ({ fail: 'No questions generated' });
    await api.request('POST', STIM);
    const failed = await waitForJob(api.request, STIM);
    const jobId = failed.body.job_id as number;
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'succeeded' });
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'running' });
    expect((await api.request('GET', STIM)).body).toEqual(failed.body);
  });

  it('moves a queued job to running, keeping the compute id', async () => {
    const jobId = await startWithLostMessage();
    const job = await api.services.pipeline.applyEvent({ externalId: 'batch-1', jobId, state: 'running' });
    expect(job).toMatchObject({ state: 'running', external_id: 'batch-1' });
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'running', job_id: jobId });
  });

  it('leaves a job as it is on a pending event', async () => {
    const jobId = await startWithLostMessage();
    expect(await api.services.pipeline.applyEvent({ externalId: 'batch-1', jobId, state: 'pending' })).toMatchObject({ state: 'queued' });
  });

  it('fails a job that succeeded without writing result.json, pointing at its log', async () => {
    const jobId = await startWithLostMessage();
    await api.services.pipeline.applyEvent({ externalId: 'batch-1', jobId, state: 'succeeded' });
    expect((await api.request('GET', STIM)).body).toMatchObject({
      status: 'failed',
      job_id: jobId,
      error: 'The stim job ended without writing its result; its log (GET /v1/repo/r1/targets/t1/stim/logs) has the details, then run it again.',
    });
  });

  it('words a signal kill without result.json as a sentence: the signal, the progress, the likely cause, and no log lines or paths', async () => {
    const stderrTail = '2026-12-02 00:49:27,560 bakehouse_engine INFO stim job 18 starting; output under file:///srv/bakehouse/.data/blobs/jobs/18/\nKilled';
    api.jobs.compute.script = () => ({ crash: { failure: { exitCode: 137, signal: 'SIGKILL' }, reason: stderrTail, percent: 40 } });
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await api.request('POST', STIM);
      const failed = await waitForJob(api.request, STIM);
      expect(failed.body).toMatchObject({ status: 'failed', error: 'The stim job was stopped by signal 9 (SIGKILL, out of memory?) at 40%; run it again.' });
      // The platform's words reach the operators' log, not the user.
      expect(log).toHaveBeenCalledWith(expect.stringContaining('bakehouse_engine INFO stim job 18 starting'));
    } finally {
      log.mockRestore();
    }
  });

  it("keeps the platform's own words out of the reason when it gives no facts", async () => {
    const jobId = await startWithLostMessage();
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await api.services.pipeline.applyEvent({ externalId: 'batch-1', jobId, state: 'failed', reason: 'Traceback (most recent call last):\n  File "/opt/engine/cli.py"' });
    } finally {
      log.mockRestore();
    }
    expect((await api.request('GET', STIM)).body).toMatchObject({
      status: 'failed',
      error: 'The stim job failed without saying why; its log (GET /v1/repo/r1/targets/t1/stim/logs) has the details, then run it again.',
    });
  });

  it("scrubs internal paths from the engine's own sentence", async () => {
    api.jobs.compute.script = () => ({ fail: 'Nothing was found at file:///srv/bakehouse/.data/blobs/jobs/3/output.jsonl; check that the input exists.' });
    await api.request('POST', STIM);
    expect((await waitForJob(api.request, STIM)).body.error).toBe('Nothing was found at [internal path]; check that the input exists.');
  });

  it('ignores an event for a job that does not exist', async () => {
    expect(await api.services.pipeline.applyEvent({ externalId: 'batch-1', jobId: 987_654, state: 'succeeded' })).toBeUndefined();
  });
});

describe('reconcile', () => {
  it('sends a lost message again, and the job completes', async () => {
    const jobId = await startWithLostMessage();
    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect((await waitForJob(api.request, STIM)).body).toMatchObject({ status: 'complete', job_id: jobId, lines: 2 });
    expect(submissions(jobId)).toHaveLength(1);
  });

  it('leaves a queued job alone within its grace period', async () => {
    await startWithLostMessage();
    const send = vi.spyOn(api.jobs.queue, 'send');
    send.mockClear();
    await api.services.pipeline.reconcile({ queuedGraceMs: 60_000, submitGraceMs: 60_000 });
    expect(send).not.toHaveBeenCalled();
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'running', progress_percent: 0 });
  });

  it('re-queues a job claimed for submission whose submit never finished', async () => {
    let finishStuckSubmit!: (externalId: string) => void;
    const submit = vi.spyOn(api.jobs.compute, 'submit').mockReturnValueOnce(new Promise<string>((resolve) => (finishStuckSubmit = resolve)));
    const jobId = (await api.request('POST', STIM)).body.job_id as number;
    await vi.waitFor(() => expect(submit).toHaveBeenCalledTimes(1), POLL);
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'running', progress_percent: 0 });

    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    const done = await waitForJob(api.request, STIM);
    expect(done.body).toMatchObject({ status: 'complete', job_id: jobId });
    expect(submit).toHaveBeenCalledTimes(2);

    // The stuck call returning at last changes nothing, and its compute job is stopped.
    finishStuckSubmit('stale-submit');
    await api.jobs.queue.drain();
    expect((await api.request('GET', STIM)).body).toEqual(done.body);
    expect(api.jobs.compute.terminated).toEqual(['stale-submit']);
  });

  it('fails a job whose compute job is gone, with a sentence', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const jobId = (await api.request('POST', STIM)).body.job_id as number;
    await waitUntilRunning(api.request, STIM);

    vi.spyOn(api.jobs.compute, 'describe').mockResolvedValueOnce({ state: 'gone', reason: 'No local compute job x is recorded in /srv/bakehouse/.data/compute' });
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    } finally {
      log.mockRestore();
    }
    expect((await api.request('GET', STIM)).body).toMatchObject({
      status: 'failed',
      job_id: jobId,
      error: 'The stim job ended at 50% without an exit code (it was killed or the machine restarted); run it again.',
    });
  });

  it('goes on to the other jobs when one cannot be looked up', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    await createTarget(api.request, 'r1', 't2');
    const stuck = (await api.request('POST', STIM)).body.job_id as number;
    const gone = (await api.request('POST', '/v1/repo/r1/targets/t2/stim')).body.job_id as number;
    await waitUntilRunning(api.request, STIM);
    await waitUntilRunning(api.request, '/v1/repo/r1/targets/t2/stim');

    vi.spyOn(api.jobs.compute, 'describe').mockImplementation(async (externalId) => {
      if (externalId === `test-${stuck}`) throw new Error('TooManyRequestsException: Rate exceeded');
      return { state: 'gone', reason: 'AWS Batch has no record of it' };
    });
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
      expect(log).toHaveBeenCalledWith(expect.stringContaining('TooManyRequestsException'));
    } finally {
      log.mockRestore();
    }
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'running', job_id: stuck });
    expect((await api.request('GET', '/v1/repo/r1/targets/t2/stim')).body).toMatchObject({ status: 'failed', job_id: gone });
  });

  it('leaves a job that is still running as it is', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const jobId = (await api.request('POST', STIM)).body.job_id as number;
    await waitUntilRunning(api.request, STIM);
    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'running', job_id: jobId });
  });

  it('completes a job whose end event was lost, from what compute says', async () => {
    api.jobs.compute.script = () => ({ lines: [{ stimulus_id: 0 }], hold: true });
    const jobId = (await api.request('POST', STIM)).body.job_id as number;
    await waitUntilRunning(api.request, STIM);
    const deliver = api.jobs.compute.onEvent;
    api.jobs.compute.onEvent = async () => {};
    await api.jobs.compute.finish(jobId);
    api.jobs.compute.onEvent = deliver;
    expect((await api.request('GET', STIM)).body.status).toBe('running');

    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect((await api.request('GET', STIM)).body).toMatchObject({ status: 'complete', job_id: jobId, lines: 1 });
  });

  it('stops and removes a job whose target is gone but whose clean-up never ran', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const jobId = (await api.request('POST', STIM)).body.job_id as number;
    await waitUntilRunning(api.request, STIM);
    // The target item disappears as if its delete had crashed before cleaning up its jobs.
    await api.store.delete(keys.resource('admin', 'r1', 'target', 't1'));

    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect(api.jobs.compute.terminated).toEqual([`test-${jobId}`]);
    expect(await api.store.get(keys.job(jobId))).toBeUndefined();
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
  });
});

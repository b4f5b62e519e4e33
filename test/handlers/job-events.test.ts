/**
 * The EventBridge "Batch Job State Change" handler (functions/handlers/job-events.ts) on recorded
 * events: each applies to its job monotonically; unknown fields are tolerated and events about
 * other Batch jobs are ignored.
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { keys } from '#core/keys.ts';
import { createBake, createTestApp, seedTarget, waitForJob, type TestApp } from '#test/support/app.ts';
import { readFixture, useTestApp } from '#test/support/lambda.ts';
import { writeLines } from '#test/support/test-engine.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
const { handler } = await import('#functions/handlers/job-events.ts');

type BatchEvent = EventBridgeEvent<string, { jobId: string } & Record<string, unknown>>;
const fixture = (name: string) => readFixture<BatchEvent>(`batch-events/${name}.json`);

const T1 = '/v1/repo/r1/targets/t1';
const B1 = '/v1/repo/r1/bakes/b1';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  useTestApp(runtime, api);
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

async function runToCompletion(path: string): Promise<void> {
  await api.request('POST', path);
  expect((await waitForJob(api.request, path)).body.status).toBe('complete');
}

/**
 * Starts a job as `jobId` and submits it to "AWS Batch" as `batchJobId`, the way the dispatcher
 * does on AWS, so that only the recorded events move it on.
 */
async function submitAs(jobId: number, path: string, batchJobId: string): Promise<void> {
  await api.store.put({ ...keys.jobCounter(), value: jobId - 1 });
  vi.spyOn(api.jobs.queue, 'send').mockResolvedValueOnce(undefined);
  expect((await api.request('POST', path)).body.job_id).toBe(jobId);
  vi.spyOn(api.jobs.compute, 'submit').mockResolvedValueOnce(batchJobId);
  await api.services.pipeline.dispatch(jobId);
  expect(await jobState(jobId)).toBe('submitted');
}

const jobState = async (jobId: number) => (await api.store.get(keys.job(jobId)))?.state;

async function bakeReady(): Promise<void> {
  await runToCompletion(`${T1}/stim`);
  await runToCompletion(`${T1}/rollout`);
  await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
}

describe('job-events handler', () => {
  it('leaves a submitted job as it is on RUNNABLE', async () => {
    const event = fixture('runnable-stim');
    await submitAs(41, `${T1}/stim`, event.detail.jobId);
    await handler(event);
    expect(await jobState(41)).toBe('submitted');
    expect((await api.request('GET', `${T1}/stim`)).body).toMatchObject({ status: 'running', job_id: 41, progress_percent: 0 });
  });

  it('moves a bake to running on RUNNING', async () => {
    await bakeReady();
    const event = fixture('running-bake');
    await submitAs(57, B1, event.detail.jobId);
    await handler(event);
    expect(await api.store.get(keys.job(57))).toMatchObject({ state: 'running', external_id: event.detail.jobId });
    expect((await api.request('GET', B1)).body).toMatchObject({ status: 'running', job_id: 57 });
  });

  it("completes a rollout on SUCCEEDED with the engine's result", async () => {
    await runToCompletion(`${T1}/stim`);
    const event = fixture('succeeded-rollout');
    await submitAs(43, `${T1}/rollout`, event.detail.jobId);
    const lines = [0, 1, 2].map((i) => ({ stimulus_id: i >> 1, trajectory_id: i & 1, response: `answer ${i}` }));
    await writeLines(api.jobs.blobs, 'jobs/43/', lines);
    await api.jobs.blobs.put('jobs/43/result.json', JSON.stringify({ status: 'complete', error: null, lines: 3 }));

    await handler(event);
    await handler(event); // EventBridge delivers at least once
    expect((await api.request('GET', `${T1}/rollout`)).body).toMatchObject({ status: 'complete', job_id: 43, lines: 3, progress_percent: 100, error: null });
    expect((await api.request('GET', `${T1}/rollout/output?offset=2&limit=5`)).body.output).toEqual([lines[2]]);
  });

  it('fails a rollout cancelled on Batch with the reason it was given', async () => {
    await runToCompletion(`${T1}/stim`);
    const event = fixture('failed-rollout-terminated');
    await submitAs(44, `${T1}/rollout`, event.detail.jobId);
    await handler(event);
    expect((await api.request('GET', `${T1}/rollout`)).body).toMatchObject({
      status: 'failed',
      job_id: 44,
      error: 'The rollout was stopped before it finished (cancelled by the user); run it again.',
    });
  });

  it('fails a bake killed for memory with a sentence saying so and what to change', async () => {
    await bakeReady();
    const event = fixture('failed-bake-oom');
    await submitAs(58, B1, event.detail.jobId);
    await handler(event);
    expect((await api.request('GET', B1)).body).toMatchObject({
      status: 'failed',
      job_id: 58,
      error: 'The bake ran out of memory and was stopped; lower micro_batch_size or data.max_length, or use larger instances, then run it again.',
    });
  });

  it("prefers the engine's own sentence from result.json", async () => {
    await bakeReady();
    const event = fixture('failed-bake-oom');
    await submitAs(58, B1, event.detail.jobId);
    await api.jobs.blobs.put('jobs/58/result.json', JSON.stringify({ status: 'failed', error: 'Training failed: Out of memory; lower micro_batch_size' }));
    await handler(event);
    expect((await api.request('GET', B1)).body.error).toBe('Training failed: Out of memory; lower micro_batch_size');
  });

  it('finds an untagged job by its name (a Spot reclaim before tags propagated)', async () => {
    await bakeReady();
    const event = fixture('failed-bake-spot-untagged');
    expect(event.detail.tags).toBeUndefined();
    await submitAs(59, B1, event.detail.jobId);
    await handler(event);
    expect((await api.request('GET', B1)).body).toMatchObject({
      status: 'failed',
      job_id: 59,
      error: 'The bake lost its machine (a Spot reclaim or a host failure); run it again.',
    });
  });

  it('never moves a complete job back on a late RUNNING', async () => {
    await bakeReady();
    const running = fixture('running-bake');
    await submitAs(57, B1, running.detail.jobId);
    await api.jobs.blobs.put('jobs/57/result.json', JSON.stringify({ status: 'complete', error: null, checkpoints: [4] }));
    await api.services.pipeline.applyEvent({ externalId: running.detail.jobId, jobId: 57, state: 'succeeded' });
    await handler(running);
    expect((await api.request('GET', B1)).body).toMatchObject({ status: 'complete', model_name: ['admin/r1/b1/4'] });
  });

  it('tolerates fields it does not know', async () => {
    await bakeReady();
    const event = fixture('running-bake');
    await submitAs(57, B1, event.detail.jobId);
    const extended = {
      ...event,
      'replay-name': 'bakehouse-replay-1',
      detail: { ...event.detail, shareIdentifier: 'tenant-a', schedulingPriority: 10, consumableResourceProperties: { consumableResourceList: [] } },
    };
    await handler(extended);
    expect(await jobState(57)).toBe('running');
  });

  it("ignores events about other Batch jobs and from other sources", async () => {
    const applyEvent = vi.spyOn(api.services.pipeline, 'applyEvent');
    await handler(fixture('other-job'));
    await handler({ ...fixture('running-bake'), source: 'aws.ecs', 'detail-type': 'ECS Task State Change' });
    await handler({ ...fixture('running-bake'), detail: { jobId: 'abc' } });
    expect(applyEvent).not.toHaveBeenCalled();
  });

  it('ignores an event for a job this deployment no longer has', async () => {
    await handler(fixture('running-bake'));
    expect(await api.store.get(keys.job(57))).toBeUndefined();
  });
});

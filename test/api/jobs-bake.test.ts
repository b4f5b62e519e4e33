/**
 * Bake jobs through the HTTP API and the real job pipeline (bread-api.md §6.5, §8, §11, §12.1,
 * Q3, Q5), with the test engine standing in for the engine.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keys } from '#core/keys.ts';
import { BakeResponse } from '#schemas/bread.ts';
import type { JobSpec } from '#schemas/job-spec.ts';
import { completeBake, createBake, createTarget, createTestApp, expectError, seedTarget, waitForJob, waitUntilRunning, type TestApp } from '#test/support/app.ts';
import type { Scripted } from '#test/support/test-engine.ts';

const R = '/v1/repo/r1';
const B1 = `${R}/bakes/b1`;

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

type BakeSpec = Extract<JobSpec, { kind: 'bake' }>;
const bakeSpecs = () => api.jobs.compute.submitted.filter((job) => job.kind === 'bake').map((job) => job.spec as BakeSpec);

/** Runs stim then rollout of a target to completion; the rollout writes `trajectories` lines. */
async function completeRollout(target: string, trajectories = 2): Promise<void> {
  const previous = api.jobs.compute.script;
  api.jobs.compute.script = (spec) =>
    spec.kind === 'rollout' ? { lines: Array.from({ length: trajectories }, (_, i) => ({ stimulus_id: 0, trajectory_id: i })) } : previous(spec);
  try {
    for (const kind of ['stim', 'rollout']) {
      await api.request('POST', `${R}/targets/${target}/${kind}`);
      expect((await waitForJob(api.request, `${R}/targets/${target}/${kind}`)).body.status).toBe('complete');
    }
  } finally {
    api.jobs.compute.script = previous;
  }
}

/** Scripts the bake the test engine runs next. */
function scriptBake(script: Scripted): void {
  const previous = api.jobs.compute.script;
  api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? script : previous(spec));
}

const METRICS = [
  { iter: 1, loss: 3, lr: 1e-4, epoch: 0.5 },
  { iter: 2, loss: 0.5, lr: 1e-4, epoch: 1 },
  { iter: 3, loss: 1.25, lr: 1e-4, epoch: 1.5 },
];

describe('GET R/bakes/{b} and metrics before any run', () => {
  it('answers not_started with the resolved config, no loss and no model names', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const response = await api.request('GET', B1);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'not_started', lines: null, error: null, job_id: null, progress_percent: null, model_name: null, loss: null });
    expect(response.body.config).toMatchObject({ datasets: [{ target: 't1', weight: 1 }] });
    expect(response.body.config.total_trajectories).toBeUndefined();
  });

  it('answers metrics with []', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const response = await api.request('GET', `${B1}/metrics`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual([]);
  });

  it.each(['', '/metrics', '/download'])('answers GET %s of an unknown bake with 404', async (route) => {
    expectError(await api.request('GET', `${R}/bakes/nope${route}`), 404, 'RESOURCE_NOT_FOUND', "Bake 'nope' not found");
  });
});

describe('POST R/bakes/{b}: prerequisites', () => {
  it('answers an unknown bake with 404', async () => {
    expectError(await api.request('POST', `${R}/bakes/nope`), 404, 'RESOURCE_NOT_FOUND', "Bake 'nope' not found");
  });

  it('answers an unknown repo with 404', async () => {
    expectError(await api.request('POST', '/v1/repo/nope/bakes/b1'), 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });

  it('refuses a bake with no datasets', async () => {
    await createBake(api.request, 'r1', 'b1');
    expectError(await api.request('POST', B1), 400, 'INVALID_INPUT', 'Bake must have datasets configured before it can run');
    expect((await api.request('GET', B1)).body.status).toBe('not_started');
    expect(api.jobs.compute.submitted).toEqual([]);
  });

  it('refuses a bake before any rollout', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    expectError(await api.request('POST', B1), 400, 'INVALID_INPUT', 'Target rollouts must complete before starting bake');
  });

  it('refuses a bake while a rollout is running', async () => {
    await api.request('POST', `${R}/targets/t1/stim`);
    await waitForJob(api.request, `${R}/targets/t1/stim`);
    api.jobs.compute.script = () => ({ hold: true });
    await api.request('POST', `${R}/targets/t1/rollout`);
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    expectError(await api.request('POST', B1), 400, 'INVALID_INPUT', 'Target rollouts must complete before starting bake');
  });

  it('refuses a bake while one of its datasets has no complete rollout', async () => {
    await createTarget(api.request, 'r1', 't2');
    await completeRollout('t1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }, { target: 't2' }] });
    expectError(await api.request('POST', B1), 400, 'INVALID_INPUT', 'Target rollouts must complete before starting bake');
    expect(bakeSpecs()).toEqual([]);
  });
});

describe('POST R/bakes/{b}: run to completion', () => {
  beforeEach(async () => {
    await createTarget(api.request, 'r1', 't2');
    await completeRollout('t1', 2);
    await completeRollout('t2', 5);
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }, { target: 't2', weight: 3 }] });
  });

  it('returns at once as running, then completes with model names newest first and the loss from the result', async () => {
    scriptBake({ metrics: METRICS, checkpoints: [100, 183, 21] });
    const started = await api.request('POST', B1);
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: 'running', progress_percent: 0, error: null, lines: null, model_name: null, loss: null });
    expect(started.body.job_id).toBeGreaterThan(0);

    const done = await waitForJob(api.request, B1);
    expect(done.body).toMatchObject({
      status: 'complete',
      job_id: started.body.job_id,
      progress_percent: 100,
      lines: null,
      error: null,
      model_name: ['admin/r1/b1/183', 'admin/r1/b1/100', 'admin/r1/b1/21'],
      loss: { latest_loss: 1.25, final_loss: 1.25, min_loss: 0.5, max_loss: 3 },
    });
  });

  it('fills in total_trajectories as the sum of rollout lines, in the config echo and the spec', async () => {
    const started = await api.request('POST', B1);
    expect(started.body.config).toMatchObject({ total_trajectories: 7, datasets: [{ target: 't1', weight: 1 }, { target: 't2', weight: 3 }] });
    const done = await waitForJob(api.request, B1);
    expect(done.body.config.total_trajectories).toBe(7);
    expect((await api.request('GET', B1)).body.config).toEqual(done.body.config);

    const [spec] = bakeSpecs();
    const rollouts = api.jobs.compute.submitted.filter((job) => job.kind === 'rollout').map((job) => job.jobId);
    expect(spec!.bake).toMatchObject({
      total_trajectories: 7,
      model: { base_model: 'Qwen/Qwen3-32B', adapters: [] },
      model_name_prefix: 'admin/r1/b1',
      datasets: [
        { target: 't1', weight: 1, rollout_output_uri: expect.stringMatching(new RegExp(`/jobs/${rollouts[0]}/output\\.jsonl$`)) },
        { target: 't2', weight: 3, rollout_output_uri: expect.stringMatching(new RegExp(`/jobs/${rollouts[1]}/output\\.jsonl$`)) },
      ],
    });
    expect(spec!.bake.config.total_trajectories).toBeUndefined();
  });

  it("carries each target's student prompt tools, which stim lines do not, for the student context", async () => {
    const tools = [{ type: 'function', function: { name: 'chart_course', parameters: { type: 'object' } } }];
    await api.request('POST', `${R}/prompts`, { body: { prompt_name: 'tooled', messages: [], tools } });
    await createTarget(api.request, 'r1', 't3', { student_prompt: 'tooled' });
    await completeRollout('t3');
    await createBake(api.request, 'r1', 'b3', { datasets: [{ target: 't1' }, { target: 't3' }] });
    await api.request('POST', `${R}/bakes/b3`);
    await waitForJob(api.request, `${R}/bakes/b3`);
    const [spec] = bakeSpecs();
    expect(spec!.bake.datasets.map(({ target, student_tools }) => ({ target, student_tools }))).toEqual([
      { target: 't1', student_tools: null },
      { target: 't3', student_tools: tools },
    ]);
  });

  it('keeps a total_trajectories the bake sets', async () => {
    await createBake(api.request, 'r1', 'b2', { datasets: [{ target: 't1' }], total_trajectories: 50 });
    const started = await api.request('POST', `${R}/bakes/b2`);
    expect(started.body.config.total_trajectories).toBe(50);
    await waitForJob(api.request, `${R}/bakes/b2`);
    expect(bakeSpecs()[0]!.bake.total_trajectories).toBe(50);
  });

  it('serves the metrics rows once written', async () => {
    scriptBake({ metrics: METRICS, checkpoints: [3] });
    await api.request('POST', B1);
    await waitForJob(api.request, B1);
    const response = await api.request('GET', `${B1}/metrics`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(METRICS);
  });

  it('shows the running loss without a final loss, and the live progress, while held', async () => {
    scriptBake({ metrics: METRICS.slice(0, 2), checkpoints: [2], hold: true });
    const started = await api.request('POST', B1);
    const running = await waitUntilRunning(api.request, B1);
    expect(running.body).toMatchObject({ status: 'running', job_id: started.body.job_id, lines: null, model_name: null });
    // No final loss yet: the key is left out, not null, since strict clients type the loss as numbers.
    expect(running.body.loss).toStrictEqual({ latest_loss: 0.5, min_loss: 0.5, max_loss: 3 });
    expect(BakeResponse.safeParse(running.body).error).toBeUndefined();
    expect((await api.request('GET', `${B1}/metrics`)).body).toEqual(METRICS.slice(0, 2));

    const again = await api.request('POST', B1);
    expect(again.body).toMatchObject({ status: 'running', job_id: started.body.job_id, progress_percent: 50 });
    expect(bakeSpecs()).toHaveLength(1);

    await api.jobs.compute.finish(started.body.job_id);
    expect((await waitForJob(api.request, B1)).body).toMatchObject({
      status: 'complete',
      model_name: ['admin/r1/b1/2'],
      loss: { latest_loss: 0.5, final_loss: 0.5, min_loss: 0.5, max_loss: 3 },
    });
  });

  it('returns the final state to a POST after complete and starts nothing', async () => {
    const done = await (async () => {
      await api.request('POST', B1);
      return waitForJob(api.request, B1);
    })();
    const again = await api.request('POST', B1);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(done.body);
    expect(bakeSpecs()).toHaveLength(1);
  });

  it("shows a failed bake with the engine's sentence, then starts a new attempt on POST", async () => {
    scriptBake({ metrics: METRICS.slice(0, 1), fail: 'Training failed: Out of memory' });
    await api.request('POST', B1);
    const failed = await waitForJob(api.request, B1);
    expect(failed.body).toMatchObject({ status: 'failed', error: 'Training failed: Out of memory', model_name: null });
    expect(failed.body.loss).toStrictEqual({ latest_loss: 3, min_loss: 3, max_loss: 3 });
    const oldId = failed.body.job_id as number;

    scriptBake({ metrics: METRICS, checkpoints: [3] });
    const retried = await api.request('POST', B1);
    expect(retried.body).toMatchObject({ status: 'running', error: null, progress_percent: 0, loss: null });
    expect(retried.body.job_id).toBeGreaterThan(oldId);
    expect(await api.store.get(keys.job(oldId))).toBeUndefined();
    expect(await api.jobs.blobs.list(`jobs/${oldId}/`)).toEqual([]);
    expect((await waitForJob(api.request, B1)).body).toMatchObject({ status: 'complete', error: null, model_name: ['admin/r1/b1/3'] });
    expect(bakeSpecs()).toHaveLength(2);
  });
});

describe('Sequential bakes', () => {
  beforeEach(async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
  });

  it("gives the child's engine the parent checkpoint as its adapter", async () => {
    await completeBake(api, 'r1', 'parent', [42]);
    const parentJob = (await api.request('GET', `${R}/bakes/parent`)).body.job_id as number;
    await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } });

    await api.request('POST', `${R}/bakes/child`);
    expect((await waitForJob(api.request, `${R}/bakes/child`)).body.status).toBe('complete');
    const child = bakeSpecs().at(-1)!;
    expect(child.bake.model).toEqual({
      base_model: 'Qwen/Qwen3-32B',
      adapters: [{ model_name: 'admin/r1/parent/42', uri: api.jobs.blobs.uriFor(`jobs/${parentJob}/ckpts/42/`) }],
    });
  });

  it('lists the whole chain of adapters, root first', async () => {
    await completeBake(api, 'r1', 'parent', [42]);
    await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } });
    await completeBake(api, 'r1', 'child', [7]);
    await createBake(api.request, 'r1', 'grandchild', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/child/7' } });
    await api.request('POST', `${R}/bakes/grandchild`);
    await waitForJob(api.request, `${R}/bakes/grandchild`);
    expect(bakeSpecs().at(-1)!.bake.model.adapters.map((adapter) => adapter.model_name)).toEqual(['admin/r1/parent/42', 'admin/r1/child/7']);
  });

  it('refuses a child of a parent that has not completed', async () => {
    await completeRollout('t1');
    scriptBake({ checkpoints: [42], hold: true });
    await api.request('POST', `${R}/bakes/parent`);
    await waitUntilRunning(api.request, `${R}/bakes/parent`);

    const child = { bake_name: 'child', template: 'default', overrides: { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } } };
    expectError(await api.request('POST', `${R}/bakes`, { body: child }), 400, 'INVALID_INPUT', "Unknown parent model 'admin/r1/parent/42'");
    expect(bakeSpecs()).toHaveLength(1);
  });

  it('refuses to run a child whose parent checkpoint is no longer complete', async () => {
    await completeBake(api, 'r1', 'parent', [42]);
    await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } });
    // Only a damaged store can get here (a complete job never runs again): the chain checks anyway.
    const parentKey = keys.resource('admin', 'r1', 'bake', 'parent');
    const parent = (await api.store.get(parentKey))!;
    await api.store.put({ ...parent, bake_job: { ...(parent.bake_job as object), state: 'running' } });

    expectError(await api.request('POST', `${R}/bakes/child`), 400, 'INVALID_INPUT', "Unknown parent model 'admin/r1/parent/42'");
    expect((await api.request('GET', `${R}/bakes/child`)).body.status).toBe('not_started');
  });
});

describe('DELETE R/bakes/{b} with a job', () => {
  beforeEach(async () => {
    await completeRollout('t1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
  });

  it('stops a running bake and removes its record and files', async () => {
    scriptBake({ metrics: METRICS, checkpoints: [3], hold: true });
    const jobId = (await api.request('POST', B1)).body.job_id as number;
    await waitUntilRunning(api.request, B1);
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).not.toEqual([]);

    const response = await api.request('DELETE', B1);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Resource deleted successfully' });
    expect(api.jobs.compute.terminated).toEqual([`test-${jobId}`]);
    expect(await api.store.get(keys.job(jobId))).toBeUndefined();
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
    expectError(await api.request('GET', B1), 404, 'RESOURCE_NOT_FOUND', "Bake 'b1' not found");
    expectError(await api.request('GET', `${B1}/metrics`), 404, 'RESOURCE_NOT_FOUND', "Bake 'b1' not found");
  });

  it('removes a complete bake with its checkpoints, from downloads too', async () => {
    scriptBake({ metrics: METRICS, checkpoints: [3] });
    const jobId = (await api.request('POST', B1)).body.job_id as number;
    await waitForJob(api.request, B1);
    expect((await api.request('GET', '/v1/models/download?name=admin/r1/b1/3')).status).toBe(200);

    expect((await api.request('DELETE', B1)).status).toBe(200);
    expect(api.jobs.compute.terminated).toEqual([]);
    expect(await api.store.get(keys.job(jobId))).toBeUndefined();
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
    expectError(await api.request('GET', '/v1/models/download?name=admin/r1/b1/3'), 404, 'RESOURCE_NOT_FOUND', 'Checkpoint not found');
  });
});

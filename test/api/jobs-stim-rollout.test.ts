/**
 * Stim and rollout jobs through the HTTP API and the real job pipeline (bread-api.md §8–§10,
 * Q3, Q4, Q11), with the test engine standing in for the engine.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keys } from '#core/keys.ts';
import { createBake, createTarget, createTestApp, expectError, HARDCODED, POLL, seedTarget, waitForJob, waitUntilRunning, type TestApp } from '#test/support/app.ts';
import type { JobSpec } from '#schemas/job-spec.ts';

const T1 = '/v1/repo/r1/targets/t1';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

/** Stim lines as the engine writes them, `stimulus_id` 0 … n−1. */
const stimLines = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    stimulus_id: i,
    unconditioned_stimulus: { messages: [{ role: 'user', content: `question ${i}` }] },
    conditioned_stimulus: { messages: [{ role: 'user', content: `question ${i}` }] },
  }));

/** Starts a job and waits for it to end; returns the final status. */
async function run(path: string) {
  const started = await api.request('POST', path);
  expect(started.status, started.text).toBe(200);
  return waitForJob(api.request, path);
}

const submissions = (jobId: number) => api.jobs.compute.submitted.filter((job) => job.jobId === jobId);

describe('GET stim and rollout before any run', () => {
  it('answers stim not_started with its config echo', async () => {
    const target = await api.request('GET', T1);
    const response = await api.request('GET', `${T1}/stim`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      status: 'not_started',
      lines: null,
      config: { generators: target.body.config.generators, teacher_prompt: 'teacher', student_prompt: 'student' },
      error: null,
      job_id: null,
      progress_percent: null,
    });
    expect(target.body.config.generators).toEqual([{ ...HARDCODED, numq: 2 }]);
  });

  it('answers rollout not_started with the rollout fields, leaving out empty extra_kwargs', async () => {
    const response = await api.request('GET', `${T1}/rollout`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      status: 'not_started',
      lines: null,
      config: { model_name: 'Qwen/Qwen3-32B', num_traj_per_stimulus: 1, temperature: 1, max_tokens: null, max_concurrency: 10 },
      error: null,
      job_id: null,
      progress_percent: null,
      total_expected: null,
    });
  });

  it('echoes extra_kwargs and max_tokens when set', async () => {
    await createTarget(api.request, 'r1', 't2', { extra_kwargs: { top_p: 0.9 }, max_tokens: 256, num_traj_per_stimulus: 3, temperature: 0.7 });
    const response = await api.request('GET', '/v1/repo/r1/targets/t2/rollout');
    expect(response.body.config).toEqual({
      model_name: 'Qwen/Qwen3-32B',
      num_traj_per_stimulus: 3,
      temperature: 0.7,
      max_tokens: 256,
      max_concurrency: 10,
      extra_kwargs: { top_p: 0.9 },
    });
  });

  it.each(['stim', 'rollout'])('pages %s output as [] with has_more false', async (kind) => {
    const response = await api.request('GET', `${T1}/${kind}/output`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'not_started', lines: null, job_id: null, output: [], offset: 0, limit: 100, has_more: false });
  });

  it.each(['stim', 'rollout', 'stim/output', 'rollout/output'])('answers GET %s of an unknown target with 404', async (route) => {
    expectError(await api.request('GET', `/v1/repo/r1/targets/nope/${route}`), 404, 'RESOURCE_NOT_FOUND', "Target 'nope' not found");
  });

  it('answers GET stim of an unknown repo with 404', async () => {
    expectError(await api.request('GET', '/v1/repo/nope/targets/t1/stim'), 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('POST stim and rollout: prerequisites', () => {
  it('refuses stim on a target without generators', async () => {
    await createTarget(api.request, 'r1', 'bare', { generators: [] });
    const response = await api.request('POST', '/v1/repo/r1/targets/bare/stim');
    expectError(response, 400, 'INVALID_INPUT', 'Target must have generators and teacher prompt configured');
    expect(api.jobs.compute.submitted).toEqual([]);
    expect((await api.request('GET', '/v1/repo/r1/targets/bare/stim')).body.status).toBe('not_started');
  });

  it('refuses rollout before any stim', async () => {
    expectError(await api.request('POST', `${T1}/rollout`), 400, 'INVALID_INPUT', 'Stim job must complete before running rollout');
    expect((await api.request('GET', `${T1}/rollout`)).body.status).toBe('not_started');
  });

  it('refuses rollout while stim is running', async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(2), hold: true });
    await api.request('POST', `${T1}/stim`);
    expectError(await api.request('POST', `${T1}/rollout`), 400, 'INVALID_INPUT', 'Stim job must complete before running rollout');
  });

  it('refuses rollout after stim failed', async () => {
    api.jobs.compute.script = () => ({ fail: 'The generator model refused every request' });
    expect((await run(`${T1}/stim`)).body.status).toBe('failed');
    expectError(await api.request('POST', `${T1}/rollout`), 400, 'INVALID_INPUT', 'Stim job must complete before running rollout');
  });

  it.each(['stim', 'rollout'])('answers POST %s on an unknown target with 404', async (kind) => {
    expectError(await api.request('POST', `/v1/repo/r1/targets/nope/${kind}`), 404, 'RESOURCE_NOT_FOUND', "Target 'nope' not found");
  });

  it('accepts an empty body under a JSON content type, as the Python SDK sends', async () => {
    const response = await api.request('POST', `${T1}/stim`, { body: '', headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(200);
    expect(response.body.status).toBe('running');
  });
});

describe('POST stim: async and idempotent', () => {
  it('returns at once as running with progress 0.0, then completes with 100.0 and the lines', async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(3) });
    const started = await api.request('POST', `${T1}/stim`);
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: 'running', error: null, progress_percent: 0 });
    expect(started.body.job_id).toBeGreaterThan(0);
    expect(started.body.config).toEqual({ generators: [{ ...HARDCODED, numq: 2 }], teacher_prompt: 'teacher', student_prompt: 'student' });

    const done = await waitForJob(api.request, `${T1}/stim`);
    expect(done.body).toEqual({ ...started.body, status: 'complete', lines: 3, progress_percent: 100 });
  });

  it('sends the engine the prompts and generators', async () => {
    await run(`${T1}/stim`);
    const [job] = api.jobs.compute.submitted;
    expect(job).toMatchObject({ kind: 'stim', spec: { kind: 'stim', stim: { generators: [{ ...HARDCODED, numq: 2 }] } } });
    const spec = job!.spec as Extract<JobSpec, { kind: 'stim' }>;
    expect(spec.stim.teacher_prompt.messages).toEqual([{ role: 'system', content: 'You are teacher.' }]);
    expect(spec.stim.student_prompt.messages).toEqual([]);
    expect(spec.output_uri).toMatch(new RegExp(`^file://.*/jobs/${job!.jobId}/$`));
  });

  it('returns the same running job to a repeated POST and submits it once', async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(2), hold: true });
    const first = await api.request('POST', `${T1}/stim`);
    const again = await api.request('POST', `${T1}/stim`);
    expect(again.status).toBe(200);
    expect(again.body.job_id).toBe(first.body.job_id);
    expect(again.body.status).toBe('running');
    expect([0, 50]).toContain(again.body.progress_percent);

    const running = await waitUntilRunning(api.request, `${T1}/stim`);
    expect(running.body).toMatchObject({ status: 'running', job_id: first.body.job_id, lines: 2, error: null });
    const third = await api.request('POST', `${T1}/stim`);
    expect(third.body).toMatchObject({ status: 'running', job_id: first.body.job_id, progress_percent: 50 });
    expect(submissions(first.body.job_id)).toHaveLength(1);
    expect(api.jobs.compute.submitted).toHaveLength(1);

    await api.jobs.compute.finish(first.body.job_id);
    expect((await waitForJob(api.request, `${T1}/stim`)).body).toMatchObject({ status: 'complete', job_id: first.body.job_id, lines: 2 });
  });

  it('answers concurrent POSTs with one job', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const responses = await Promise.all([1, 2, 3, 4].map(() => api.request('POST', `${T1}/stim`)));
    expect(new Set(responses.map((response) => response.body.job_id)).size).toBe(1);
    await vi.waitFor(() => expect(api.jobs.compute.submitted).toHaveLength(1), POLL);
  });

  it('returns the final state after complete and starts nothing new', async () => {
    const done = await run(`${T1}/stim`);
    const again = await api.request('POST', `${T1}/stim`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(done.body);
    expect(api.jobs.compute.submitted).toHaveLength(1);
  });

  it("shows a failed job with the engine's error sentence", async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(1), fail: 'Generator 0 returned no questions: check its template' });
    const failed = await run(`${T1}/stim`);
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({ status: 'failed', error: 'Generator 0 returned no questions: check its template', lines: 1 });
  });

  it('starts a new attempt after failed: new larger job_id, error cleared, old output discarded', async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(3).map((line) => ({ ...line, attempt: 1 })), fail: 'Out of credits' });
    const failed = await run(`${T1}/stim`);
    const oldId = failed.body.job_id as number;
    expect((await api.request('GET', `${T1}/stim/output`)).body).toMatchObject({ lines: 3, output: [{ attempt: 1 }, { attempt: 1 }, { attempt: 1 }] });

    api.jobs.compute.script = () => ({ lines: stimLines(2).map((line) => ({ ...line, attempt: 2 })), hold: true });
    const retried = await api.request('POST', `${T1}/stim`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'running', error: null, progress_percent: 0 });
    expect(retried.body.job_id).toBeGreaterThan(oldId);
    expect(await api.jobs.blobs.list(`jobs/${oldId}/`)).toEqual([]);
    expect(await api.store.get(keys.job(oldId))).toBeUndefined();

    await waitUntilRunning(api.request, `${T1}/stim`);
    const page = await api.request('GET', `${T1}/stim/output`);
    expect(page.body).toMatchObject({ status: 'running', job_id: retried.body.job_id, lines: 2, has_more: false });
    expect(page.body.output.map((line: { attempt: number }) => line.attempt)).toEqual([2, 2]);

    await api.jobs.compute.finish(retried.body.job_id);
    expect((await waitForJob(api.request, `${T1}/stim`)).body).toMatchObject({ status: 'complete', error: null, lines: 2 });
    expect(api.jobs.compute.submitted.map((job) => job.jobId)).toEqual([oldId, retried.body.job_id]);
  });

  it('gives job ids that are positive and increase across targets and kinds', async () => {
    await createTarget(api.request, 'r1', 't2');
    const ids: number[] = [];
    for (const path of [`${T1}/stim`, '/v1/repo/r1/targets/t2/stim', `${T1}/rollout`, '/v1/repo/r1/targets/t2/rollout']) {
      ids.push((await run(path)).body.job_id);
    }
    expect(ids[0]).toBeGreaterThan(0);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
  });
});

describe('POST rollout', () => {
  it('runs after stim completes, with total_expected = stim lines × num_traj_per_stimulus', async () => {
    await createTarget(api.request, 'r1', 't3', { num_traj_per_stimulus: 3, temperature: 0.5, extra_kwargs: { seed: 7 } });
    const T3 = '/v1/repo/r1/targets/t3';
    api.jobs.compute.script = (spec) =>
      spec.kind === 'stim' ? { lines: stimLines(4) } : { lines: Array.from({ length: 12 }, (_, i) => ({ stimulus_id: i % 4, trajectory_id: i })) };
    expect((await run(`${T3}/stim`)).body).toMatchObject({ status: 'complete', lines: 4 });

    const started = await api.request('POST', `${T3}/rollout`);
    expect(started.body).toMatchObject({ status: 'running', progress_percent: 0, total_expected: 12, error: null });
    const done = await waitForJob(api.request, `${T3}/rollout`);
    expect(done.body).toEqual({
      status: 'complete',
      lines: 12,
      config: { model_name: 'Qwen/Qwen3-32B', num_traj_per_stimulus: 3, temperature: 0.5, max_tokens: null, max_concurrency: 10, extra_kwargs: { seed: 7 } },
      error: null,
      job_id: started.body.job_id,
      progress_percent: 100,
      total_expected: 12,
    });

    const [stim, rollout] = api.jobs.compute.submitted;
    expect(rollout!.spec).toMatchObject({
      kind: 'rollout',
      rollout: {
        stim_output_uri: expect.stringMatching(new RegExp(`/jobs/${stim!.jobId}/output\\.jsonl$`)),
        model: { base_model: 'Qwen/Qwen3-32B', adapters: [] },
        num_traj_per_stimulus: 3,
        temperature: 0.5,
        max_tokens: null,
        max_concurrency: 10,
        extra_kwargs: { seed: 7 },
        seed: 7,
      },
    });
  });

  it('is idempotent while running and after complete', async () => {
    await run(`${T1}/stim`);
    api.jobs.compute.script = () => ({ lines: [{ stimulus_id: 0, trajectory_id: 0 }], hold: true });
    const first = await api.request('POST', `${T1}/rollout`);
    await waitUntilRunning(api.request, `${T1}/rollout`);
    const again = await api.request('POST', `${T1}/rollout`);
    expect(again.body).toMatchObject({ status: 'running', job_id: first.body.job_id, progress_percent: 50, total_expected: 2 });
    expect(submissions(first.body.job_id)).toHaveLength(1);

    await api.jobs.compute.finish(first.body.job_id);
    const done = await waitForJob(api.request, `${T1}/rollout`);
    expect((await api.request('POST', `${T1}/rollout`)).body).toEqual(done.body);
    expect(api.jobs.compute.submitted).toHaveLength(2);
  });

  it('leaves a complete stim alone when rollout is started', async () => {
    const stim = await run(`${T1}/stim`);
    await run(`${T1}/rollout`);
    expect((await api.request('GET', `${T1}/stim`)).body).toEqual(stim.body);
  });
});

describe('GET stim/output and rollout/output: pagination', () => {
  const N = 250;
  beforeEach(async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(N) });
    expect((await run(`${T1}/stim`)).body).toMatchObject({ status: 'complete', lines: N });
  });

  const page = (query: string) => api.request('GET', `${T1}/stim/output${query}`);
  const ids = (response: { body: { output: { stimulus_id: number }[] } }) => response.body.output.map((line) => line.stimulus_id);
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

  it('defaults to offset 0, limit 100', async () => {
    const response = await page('');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'complete', lines: N, offset: 0, limit: 100, has_more: true, progress_percent: 100 });
    expect(ids(response)).toEqual(range(0, 100));
    expect(response.body.output[0]).toEqual(stimLines(1)[0]);
  });

  it.each([
    [0, 100, true],
    [100, 100, true],
    [200, 100, false],
    [150, 100, false],
    [149, 100, true],
    [0, 1, true],
    [249, 1, false],
    [0, 1000, false],
    [7, 13, true],
  ])('offset %i, limit %i returns exactly those lines (has_more %s)', async (offset, limit, hasMore) => {
    const response = await page(`?offset=${offset}&limit=${limit}`);
    expect(response.status).toBe(200);
    expect(ids(response)).toEqual(range(offset, Math.min(offset + limit, N)));
    expect(response.body).toMatchObject({ offset, limit, has_more: hasMore, lines: N });
  });

  it.each([250, 251, 10_000])('returns [] for offset %i past the end', async (offset) => {
    const response = await page(`?offset=${offset}&limit=10`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ output: [], has_more: false, lines: N, offset, limit: 10 });
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['offset=-1', 'offset'],
    ['limit=abc', 'limit'],
    ['offset=1.5', 'offset'],
  ])('refuses %s with 422', async (query, field) => {
    const response = await page(`?${query}`);
    expectError(response, 422, 'VALIDATION_ERROR', new RegExp(`^${field}: `));
  });

  it('pages rollout output the same way, with total_expected', async () => {
    await createTarget(api.request, 'r1', 't2', { num_traj_per_stimulus: 2 });
    api.jobs.compute.script = (spec) =>
      spec.kind === 'stim' ? { lines: stimLines(N) } : { lines: Array.from({ length: N * 2 }, (_, i) => ({ stimulus_id: i >> 1, trajectory_id: i & 1 })) };
    await run('/v1/repo/r1/targets/t2/stim');
    await run('/v1/repo/r1/targets/t2/rollout');
    const response = await api.request('GET', '/v1/repo/r1/targets/t2/rollout/output?offset=498&limit=5');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      status: 'complete',
      lines: 500,
      total_expected: 500,
      offset: 498,
      limit: 5,
      has_more: false,
      output: [
        { stimulus_id: 249, trajectory_id: 0 },
        { stimulus_id: 249, trajectory_id: 1 },
      ],
    });
    expectError(await api.request('GET', '/v1/repo/r1/targets/t2/rollout/output?limit=1001'), 422, 'VALIDATION_ERROR');
  });

  it('pages the lines written so far while the job runs', async () => {
    await createTarget(api.request, 'r1', 't2');
    api.jobs.compute.script = () => ({ lines: stimLines(5), hold: true });
    await api.request('POST', '/v1/repo/r1/targets/t2/stim');
    await waitUntilRunning(api.request, '/v1/repo/r1/targets/t2/stim');
    const response = await api.request('GET', '/v1/repo/r1/targets/t2/stim/output?offset=3&limit=10');
    expect(response.body).toMatchObject({ status: 'running', lines: 5, has_more: false, progress_percent: 50 });
    expect(ids(response)).toEqual([3, 4]);
  });
});

describe('DELETE a target with jobs', () => {
  it('stops a running stim job and removes its record and files', async () => {
    api.jobs.compute.script = () => ({ lines: stimLines(2), hold: true });
    const started = await api.request('POST', `${T1}/stim`);
    const jobId = started.body.job_id as number;
    await waitUntilRunning(api.request, `${T1}/stim`);
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).not.toEqual([]);

    const response = await api.request('DELETE', T1);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Resource deleted successfully' });
    expect(api.jobs.compute.terminated).toEqual([`test-${jobId}`]);
    expect(await api.store.get(keys.job(jobId))).toBeUndefined();
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
    expectError(await api.request('GET', `${T1}/stim`), 404, 'RESOURCE_NOT_FOUND', "Target 't1' not found");
    expectError(await api.request('GET', T1), 404, 'RESOURCE_NOT_FOUND', "Target 't1' not found");
  });

  it('removes a complete stim and stops a running rollout', async () => {
    const stim = (await run(`${T1}/stim`)).body.job_id as number;
    api.jobs.compute.script = () => ({ hold: true });
    const rollout = (await api.request('POST', `${T1}/rollout`)).body.job_id as number;
    await waitUntilRunning(api.request, `${T1}/rollout`);

    expect((await api.request('DELETE', T1)).status).toBe(200);
    expect(api.jobs.compute.terminated).toEqual([`test-${rollout}`]);
    for (const jobId of [stim, rollout]) {
      expect(await api.store.get(keys.job(jobId))).toBeUndefined();
      expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
    }
  });

  it('never submits a queued job of a deleted target', async () => {
    vi.spyOn(api.jobs.queue, 'send').mockResolvedValueOnce(undefined);
    const jobId = (await api.request('POST', `${T1}/stim`)).body.job_id as number;
    expect((await api.request('DELETE', T1)).status).toBe(200);
    await api.services.pipeline.dispatch(jobId);
    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect(api.jobs.compute.submitted).toEqual([]);
    expect(api.jobs.compute.terminated).toEqual([]);
    expect(await api.jobs.blobs.list(`jobs/${jobId}/`)).toEqual([]);
  });

  it('still refuses with 409 while a bake uses the target, leaving its job running', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const jobId = (await api.request('POST', `${T1}/stim`)).body.job_id as number;
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    expectError(await api.request('DELETE', T1), 409, 'RESOURCE_CONFLICT', "Target 't1' is used by bakes: b1");
    expect(api.jobs.compute.terminated).toEqual([]);
    expect((await api.request('GET', `${T1}/stim`)).body).toMatchObject({ status: 'running', job_id: jobId });
  });

  it('starts afresh when a target of the same name is created again', async () => {
    await run(`${T1}/stim`);
    await api.request('DELETE', T1);
    await createTarget(api.request, 'r1', 't1');
    expect((await api.request('GET', `${T1}/stim`)).body).toMatchObject({ status: 'not_started', job_id: null, lines: null });
  });
});

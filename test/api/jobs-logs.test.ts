/**
 * `GET …/stim/logs`, `…/rollout/logs` and `…/bakes/{bake}/logs`: the engine's own log of a job
 * (engine.log under the job's prefix), for its owner only, as text.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { completeBake, createBake, createTestApp, createUserKey, expectError, seedTarget, waitForJob, type TestApp } from '#test/support/app.ts';

const T1 = '/v1/repo/r1/targets/t1';
const B1 = '/v1/repo/r1/bakes/b1';
const ENGINE_LOG = '2026-12-02 00:49:27,560 bakehouse_engine INFO stim job 1 starting; output under file:///srv/data/jobs/1/\nTraceback (most recent call last):\n';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

async function runStim(): Promise<number> {
  await api.request('POST', `${T1}/stim`);
  const done = await waitForJob(api.request, `${T1}/stim`);
  return done.body.job_id as number;
}

describe('job logs', () => {
  it("serves a stim job's log to its owner as text, paths and all", async () => {
    const jobId = await runStim();
    await api.jobs.blobs.put(`jobs/${jobId}/engine.log`, ENGINE_LOG);
    const response = await api.request('GET', `${T1}/stim/logs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(response.text).toBe(ENGINE_LOG);
  });

  it("answers 404 for another user's job log, as for a target they do not have", async () => {
    const jobId = await runStim();
    await api.jobs.blobs.put(`jobs/${jobId}/engine.log`, ENGINE_LOG);
    const alice = await createUserKey(api.request, 'alice');
    const response = await api.request('GET', `${T1}/stim/logs`, { key: alice });
    expectError(response, 404, 'RESOURCE_NOT_FOUND');
    expect(response.text).not.toContain('bakehouse_engine');
  });

  it('answers 404 before the job has run or written its log', async () => {
    expectError(await api.request('GET', `${T1}/rollout/logs`), 404, 'RESOURCE_NOT_FOUND', "The rollout job of target 't1' has no log yet; it writes one once it starts running.");
    await runStim();
    expectError(await api.request('GET', `${T1}/stim/logs`), 404, 'RESOURCE_NOT_FOUND');
  });

  it("serves a bake's log, and only the end of a very long one", async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    expectError(await api.request('GET', `${B1}/logs`), 404, 'RESOURCE_NOT_FOUND', "Bake 'b1' has no log yet; its job writes one once it starts running.");
    const jobId = (await completeBake(api, 'r1', 'b1', [2])).body.job_id as number;
    const line = `${'step '.padEnd(99, '.')}\n`;
    const lines = 60_000; // 6 MB: over the 5 MiB served
    await api.jobs.blobs.put(`jobs/${jobId}/engine.log`, line.repeat(lines - 1) + 'the last line\n');
    const response = await api.request('GET', `${B1}/logs`);
    expect(response.status).toBe(200);
    const [notice, ...rest] = response.text.split('\n');
    expect(notice).toMatch(/^\[the first \d+ bytes of this log are left out\]$/);
    expect(rest[0]).toBe(line.trimEnd());
    expect(rest.at(-2)).toBe('the last line');
    expect(Buffer.byteLength(response.text)).toBeLessThanOrEqual(5 * 1024 * 1024 + 100);
  });

  it('is in the OpenAPI document as text', async () => {
    const document = (await api.request('GET', '/openapi.json')).body;
    for (const path of ['/v1/repo/{repo_name}/targets/{target_name}/stim/logs', '/v1/repo/{repo_name}/targets/{target_name}/rollout/logs', '/v1/repo/{repo_name}/bakes/{bake_name}/logs']) {
      expect(document.paths[path].get.responses['200'].content).toHaveProperty('text/plain');
      expect(document.paths[path].get.responses['404'].content).toHaveProperty('application/json');
    }
  });
});

/**
 * The scheduled reconciler (functions/handlers/reconcile.ts): jobs whose compute job is gone are
 * failed with the reason; young jobs get their grace period.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { createTarget, createTestApp, seedTarget, waitUntilRunning, type TestApp } from '#test/support/app.ts';
import { useTestApp } from '#test/support/lambda.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
const { handler } = await import('#functions/handlers/reconcile.ts');

const T1 = '/v1/repo/r1/targets/t1';
const T2 = '/v1/repo/r1/targets/t2';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  useTestApp(runtime, api);
  await seedTarget(api.request, 'r1');
  await createTarget(api.request, 'r1', 't2');
});
afterEach(() => api.close());

describe('reconcile handler', () => {
  it('fails a running job whose compute job is gone, and leaves a just-queued job for later', async () => {
    api.jobs.compute.script = () => ({ hold: true });
    const running = (await api.request('POST', `${T1}/stim`)).body.job_id as number;
    await waitUntilRunning(api.request, `${T1}/stim`);
    vi.spyOn(api.jobs.queue, 'send').mockResolvedValueOnce(undefined);
    const queued = (await api.request('POST', `${T2}/stim`)).body.job_id as number;

    const describeJob = vi.spyOn(api.jobs.compute, 'describe').mockResolvedValue({ state: 'gone', reason: 'AWS Batch has no record of job test-1' });
    const send = vi.spyOn(api.jobs.queue, 'send');
    send.mockClear();
    await handler();

    expect(describeJob).toHaveBeenCalledWith(`test-${running}`);
    expect((await api.request('GET', `${T1}/stim`)).body).toMatchObject({
      status: 'failed',
      error: 'The stim job ended at 50% without an exit code (it was killed or the machine restarted); run it again.',
    });
    expect(send).not.toHaveBeenCalled();
    expect((await api.request('GET', `${T2}/stim`)).body).toMatchObject({ status: 'running', job_id: queued, progress_percent: 0 });
  });

  it('gives queued jobs five minutes and claimed ones fifteen', async () => {
    const reconcile = vi.spyOn(api.services.pipeline, 'reconcile');
    await handler();
    expect(reconcile).toHaveBeenCalledWith({ queuedGraceMs: 5 * 60_000, submitGraceMs: 15 * 60_000 });
  });

  it('runs with nothing to do', async () => {
    await expect(handler()).resolves.toBeUndefined();
  });
});

/**
 * The SQS-triggered dispatcher (functions/handlers/dispatch.ts) on recorded events: partial batch
 * failures name only the bad records, so SQS retries those alone.
 */
import { FullBatchFailureError } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { keys } from '#core/keys.ts';
import { createTestApp, seedTarget, waitForJob, type TestApp } from '#test/support/app.ts';
import { lambdaContext, readFixture, useTestApp } from '#test/support/lambda.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
const { handler } = await import('#functions/handlers/dispatch.ts');

/** One record with body `{"jobId":12}`, then one whose body is not a job message. */
const EVENT = readFixture<SQSEvent>('sqs/dispatch-one-good-one-malformed.json');
const [GOOD, MALFORMED] = EVENT.Records as [SQSEvent['Records'][number], SQSEvent['Records'][number]];
const STIM = '/v1/repo/r1/targets/t1/stim';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  useTestApp(runtime, api);
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

const dispatch = async (event: SQSEvent) => (await handler(event, lambdaContext('bakehouse-prod-Dispatch'), () => {})) as SQSBatchResponse;

/** Starts stim as job 12 with its in-process message lost: only the SQS record will dispatch it. */
async function queueJob12(): Promise<void> {
  await api.store.put({ ...keys.jobCounter(), value: 11 });
  vi.spyOn(api.jobs.queue, 'send').mockResolvedValueOnce(undefined);
  expect((await api.request('POST', STIM)).body).toMatchObject({ status: 'running', job_id: 12, progress_percent: 0 });
}

describe('dispatch handler', () => {
  it('dispatches the good record and reports only the malformed one', async () => {
    await queueJob12();
    const response = await dispatch(EVENT);
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: MALFORMED.messageId }] });
    expect(api.jobs.compute.submitted.map((job) => job.jobId)).toEqual([12]);
    expect((await waitForJob(api.request, STIM)).body).toMatchObject({ status: 'complete', job_id: 12 });
  });

  it('submits once when SQS delivers the same message again', async () => {
    await queueJob12();
    const once = { Records: [GOOD] };
    expect(await dispatch(once)).toEqual({ batchItemFailures: [] });
    expect(await dispatch(once)).toEqual({ batchItemFailures: [] });
    expect(api.jobs.compute.submitted.map((job) => job.jobId)).toEqual([12]);
  });

  it('accepts a message for a job that no longer exists, so it is not retried', async () => {
    expect(await dispatch({ Records: [GOOD] })).toEqual({ batchItemFailures: [] });
    expect(api.jobs.compute.submitted).toEqual([]);
  });

  it('fails the whole invocation when every record fails, and the redelivery then succeeds', async () => {
    await queueJob12();
    vi.spyOn(api.services.pipeline, 'dispatch').mockRejectedValueOnce(new Error('ProvisionedThroughputExceededException'));
    await expect(dispatch({ Records: [GOOD] })).rejects.toBeInstanceOf(FullBatchFailureError);
    expect(await dispatch({ Records: [GOOD] })).toEqual({ batchItemFailures: [] });
    expect(api.jobs.compute.submitted.map((job) => job.jobId)).toEqual([12]);
  });
});

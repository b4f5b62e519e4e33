/**
 * The trainer relay routes (functions/http/routes/trainer-relay.ts) and a run's reactions to its
 * trainer job's end, driven by a fake trainer; and a second server over the same Store.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Actor } from '#core/actor.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import { RunInactiveError } from '#core/errors.ts';
import type { DomainEvent } from '#core/events/events.ts';
import { JobRecords } from '#core/jobs/job-records.ts';
import { createServices } from '#core/services.ts';
import type { SubmittedOperation } from '#core/training/model.ts';
import type { TrainingService } from '#core/training/training-service.ts';
import { createApp } from '#http/app.ts';
import { systemClock } from '#ports/clock.ts';
import { BASE_MODELS, createTestApp, DEFAULT_BASE_MODEL, type TestApp } from '../support/app.ts';
import { FakeTrainer } from '../support/fake-trainer.ts';
import { createRun, expectDone, OPTIM_STEP } from '../support/training.ts';

const TOY = 'bakehouse/toy-instruct';
const ALICE: Actor = { userId: ADMIN_USER, isAdmin: true };
const STEP = { step: 1, learning_rate: 1e-4, grad_norm: 0.5 };

let api: TestApp;
let training: TrainingService;
let events: DomainEvent[];

beforeEach(async () => {
  events = [];
  api = await createTestApp({ services: { training: { pollMs: 5 }, publisher: { publish: async (event) => void events.push(event) } } });
  training = api.services.training;
});
afterEach(() => api.close());

async function readyRun(scaleDownDelaySeconds = 600) {
  const run = await createRun(api, ALICE, TOY, { scaleDownDelaySeconds, relayUrl: 'http://api.test' });
  return { run, trainer: await FakeTrainer.readyForRun(api, run.id) };
}

const submit = (runId: string, key: string, operation: SubmittedOperation = OPTIM_STEP) => training.operations.submit(ALICE, runId, { idempotencyKey: key, operation });
const poll = (runId: string, key: string, holdMs = 0) => training.operations.poll(ALICE, runId, key, { holdMs });

/** The trainer exits after idling (the test engine holds it until then, once it reports it running). */
async function idleExit(trainer: FakeTrainer) {
  await vi.waitFor(() => api.jobs.compute.finish(trainer.jobId));
}

/** Reports the trainer job's death as the compute platform would. */
async function crash(trainer: FakeTrainer) {
  await api.services.pipeline.applyEvent({ externalId: `test-${trainer.jobId}`, jobId: trainer.jobId, state: 'failed', failure: { signal: 'SIGKILL' } });
}

describe('authorization', () => {
  it('answers 401 to a wrong or missing token, and 422 to a malformed body', async () => {
    const { trainer } = await readyRun();
    expect((await trainer.withToken('x'.repeat(43)).next()).status).toBe(401);
    const bare = await api.app.request(`/v1/relay/trainers/${trainer.jobId}/next`, { method: 'POST', body: '{}' });
    expect(bare.status).toBe(401);
    const other = await api.app.request('/v1/relay/trainers/999/next', { method: 'POST', headers: { authorization: `Bearer ${trainer.spec.trainer.relay_token}` }, body: '{}' });
    expect(other.status).toBe(401);
    const malformed = await api.app.request(`/v1/relay/trainers/${trainer.jobId}/next`, {
      method: 'POST',
      headers: { authorization: `Bearer ${trainer.spec.trainer.relay_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ wait_s: 99 }),
    });
    expect(malformed.status).toBe(422);
  });

  it('answers 410 once the run is deactivated, so the trainer stops', async () => {
    const { run, trainer } = await readyRun();
    await training.runs.deactivate(ALICE, run.id);
    for (const answer of [await trainer.next(), await trainer.ready(), await trainer.post('x', { status: 'done', result: {} })]) {
      expect(answer).toMatchObject({ status: 410, body: { code: 'TRAINER_RETIRED' } });
    }
  });

  it('answers 410 to a trainer whose job ended; once another replaced it, its token is gone with its record', async () => {
    const { run, trainer } = await readyRun();
    await idleExit(trainer);
    expect((await trainer.next()).status).toBe(410);
    await submit(run.id, 'wake');
    const second = await FakeTrainer.forRun(api, run.id, 2);
    expect(second.jobId).not.toBe(trainer.jobId);
    expect((await second.ready()).status).toBe(200);
    expect((await trainer.next()).status).toBe(401);
    expect((await second.take()).id).toBe('wake');
  });
});

describe('operations through the relay', () => {
  it('hands the held operation out again until its result is posted, and stores a repeated result once', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'a');
    await submit(run.id, 'b');
    expect((await trainer.next()).body.operation.id).toBe('a');
    expect((await trainer.next()).body.operation).toMatchObject({ id: 'a', seq: 1 });
    expect((await trainer.post('a', { status: 'done', result: STEP })).status).toBe(200);
    expect((await trainer.post('a', { status: 'done', result: { ...STEP, step: 99 } })).status).toBe(200);
    expectDone(await poll(run.id, 'a'), STEP);
    expect((await trainer.next()).body.operation).toMatchObject({ id: 'b', seq: 2 });
    expect((await trainer.post('missing', { status: 'done', result: {} })).status).toBe(404);
  });

  it('long-polls next until an operation arrives', async () => {
    const { run, trainer } = await readyRun();
    const waiting = trainer.next(5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await submit(run.id, 'late');
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.operation.id).toBe('late');
    await trainer.post('late', { status: 'done', result: STEP });
    const started = Date.now();
    const empty = await trainer.next(0.2);
    expect(empty.body.operation).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
  });

  it('takes a result larger than the API’s usual body limit, as large as the data plane’s bodies', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'wide');
    await trainer.take();
    const logprobs = Array.from({ length: 1_000_000 }, (_, i) => -(i % 997) / 997 - 0.123456);
    const result = { loss: 1, loss_sum: 1, active_tokens: logprobs.length, outputs: [{ logprobs: { data: logprobs, dtype: 'float32', shape: [logprobs.length] } }], metrics: {} };
    expect(JSON.stringify(result).length).toBeGreaterThan(8 * 1024 * 1024);
    expect((await trainer.post('wide', { status: 'done', result })).status).toBe(200);
    expectDone(await poll(run.id, 'wide'), result);
  });

  it('scrubs internal paths from engine errors before clients see them', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'x');
    await trainer.take();
    await trainer.post('x', { status: 'error', error: 'Could not read file:///data/blobs/x.safetensors\nTraceback …', error_class: 'RuntimeError' });
    expect(await poll(run.id, 'x')).toEqual({ status: 'error', error: 'Could not read [internal path]', errorClass: 'RuntimeError' });
  });
});

describe('trainer ends', () => {
  it('fails the run and every unanswered operation with the trainer’s sentence when it dies', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'held');
    await trainer.take();
    await submit(run.id, 'waiting');
    await crash(trainer);
    // The test engine reports 50% progress for every job it runs.
    const sentence = 'The trainer was stopped by signal 9 (SIGKILL, out of memory?) at 50%; create a new run from its last saved checkpoint.';
    for (const id of ['held', 'waiting']) expect(await poll(run.id, id)).toEqual({ status: 'error', error: sentence, errorClass: 'RuntimeError' });
    expect(await training.runs.get(ALICE, run.id)).toMatchObject({ state: 'failed', error: sentence });
    await expect(training.runs.health(ALICE, run.id)).rejects.toThrow(new RunInactiveError(`Run ${run.id} failed: ${sentence}`));
    await expect(submit(run.id, 'after')).rejects.toThrow(RunInactiveError);
    expect(events.filter((event) => event.type === 'run.failed').map((event) => event.data)).toEqual([{ run_id: run.id, base_model: TOY, status: 'FAILED', error: sentence }]);
    // A repeated failure event changes nothing.
    await crash(trainer);
    expect(events.filter((event) => event.type === 'run.failed')).toHaveLength(1);
    await expect(FakeTrainer.all(api, 2)).rejects.toThrow();
  });

  it('scales to zero on an idle exit, and the next operation starts a trainer that restores the same state', async () => {
    const { run, trainer } = await readyRun(60);
    await idleExit(trainer);
    expect(await training.runs.health(ALICE, run.id)).toBe('scaled_to_zero');
    expect((await training.runs.get(ALICE, run.id)).state).toBe('active');
    expect(events.map((event) => event.type)).toEqual(['run.created', 'run.ready']);

    await submit(run.id, 'after-idle');
    const next = await FakeTrainer.forRun(api, run.id, 2);
    expect(next.spec.trainer).toMatchObject({ state_uri: trainer.spec.trainer.state_uri, idle_timeout_s: 60, run_id: run.id });
    expect(await training.runs.health(ALICE, run.id)).toBe('starting');
    await next.ready(5);
    expect(await training.runs.health(ALICE, run.id)).toBe('ready');
    expect((await next.take()).id).toBe('after-idle');
    expect(events.filter((event) => event.type === 'run.ready').map((event) => event.id)).toEqual([`evt_run_${run.id}_ready_${trainer.jobId}`, `evt_run_${run.id}_ready_${next.jobId}`]);
  });

  it('starts a new trainer at once when operations arrived while the last one was stopping', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'queued-before-exit');
    await idleExit(trainer);
    const next = await FakeTrainer.forRun(api, run.id, 2);
    await next.ready();
    expect((await next.take()).id).toBe('queued-before-exit');
  });

  it('fails an operation that a trainer stopping idle still held, and nothing else', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'held');
    await trainer.take();
    await idleExit(trainer);
    expect(await poll(run.id, 'held')).toEqual({ status: 'error', error: 'The trainer stopped before answering this operation, so it may not have run; submit it again.', errorClass: 'RuntimeError' });
    expect((await training.runs.get(ALICE, run.id)).state).toBe('active');
  });

  it('applies an end it missed when a poll finds the trainer gone, and so does the sweep', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'orphan');
    // The job fails without the pipeline's listener hearing of it (a crash in between).
    await new JobRecords(api.store, systemClock).transition(trainer.jobId, 'failed', { error: 'The trainer failed.' });
    expect(await poll(run.id, 'orphan', 20)).toEqual({ status: 'pending' });
    expect(await poll(run.id, 'orphan')).toEqual({ status: 'error', error: 'The trainer failed.', errorClass: 'RuntimeError' });

    const { run: other, trainer: otherTrainer } = await readyRun();
    await new JobRecords(api.store, systemClock).transition(otherTrainer.jobId, 'failed', { error: 'The trainer failed.' });
    await training.sweep();
    expect(await training.runs.get(ALICE, other.id)).toMatchObject({ state: 'failed', error: 'The trainer failed.' });
  });
});

describe('a server restart', () => {
  it('loses nothing: another server over the same Store serves the trainer and the clients', async () => {
    const { run, trainer } = await readyRun();
    await submit(run.id, 'before-restart');
    // A new server process over the same Store, Blobs, queue and compute; the trainer keeps running.
    const services = createServices({ store: api.store, ...api.jobs, clock: systemClock, catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL }, training: { pollMs: 5 } });
    const restarted = createApp(services);
    const moved = trainer.through(restarted);

    expect(await services.training.operations.poll(ALICE, run.id, 'before-restart', { holdMs: 0 })).toEqual({ status: 'pending' });
    expect((await moved.take()).id).toBe('before-restart');
    // A poll held on one server sees a result posted through the other.
    const held = services.training.operations.poll(ALICE, run.id, 'before-restart', { holdMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect((await trainer.post('before-restart', { status: 'done', result: STEP })).status).toBe(200);
    expectDone(await held, STEP);
    // Deduplication and numbering carry over.
    expect(await services.training.operations.submit(ALICE, run.id, { idempotencyKey: 'before-restart', operation: OPTIM_STEP })).toEqual({ operationId: 'before-restart', seq: 1 });
    expect(await services.training.operations.submit(ALICE, run.id, { idempotencyKey: 'after-restart', operation: OPTIM_STEP })).toEqual({ operationId: 'after-restart', seq: 2 });
    // The trainer's long poll on the first server sees an operation the second accepted.
    expect((await trainer.next(5)).body.operation.id).toBe('after-restart');
    expect(await services.training.runs.health(ALICE, run.id)).toBe('ready');
  });
});

/**
 * Job lifecycle events (DESIGN.md §7a): each transition of a user's job writes its event in the
 * same transaction (the outbox), the job flow publishes it at once, and the reconciler publishes
 * what a crash or a failing publisher left behind — each event once, under a stable id. Run on
 * both Store adapters, since the guarantee rests on their transactions.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import type { DomainEvent, EventPublisher } from '#core/events/events.ts';
import { EventOutbox } from '#core/events/job-events.ts';
import { keys } from '#core/keys.ts';
import { createServices } from '#core/services.ts';
import { systemClock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';
import { EVENT_PAYLOADS, eventPayload } from '#schemas/events.ts';
import {
  BASE_MODELS,
  completeBake,
  createBake,
  createTestApp,
  DEFAULT_BASE_MODEL,
  POLL,
  seedTarget,
  waitForJob,
  type TestApp,
} from '#test/support/app.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';

const STIM = '/v1/repo/r1/targets/t1/stim';

/** Remembers what it was given; fails every publish while `failing` is set. */
class RecordingPublisher implements EventPublisher {
  readonly events: DomainEvent[] = [];
  failing = false;

  async publish(event: DomainEvent): Promise<void> {
    if (this.failing) throw new Error('the subscriber store is unavailable');
    this.events.push(event);
  }
}

const STORES: [string, () => Promise<Store>][] = [
  ['SQLite', async () => new SqliteStore(':memory:')],
  ['DynamoDB', createDynamoTestStore],
];

describe.each(STORES)('job events on %s', (_name, makeStore) => {
  let api: TestApp;
  let publisher: RecordingPublisher;

  async function start(): Promise<void> {
    publisher = new RecordingPublisher();
    api = await createTestApp({ store: makeStore, services: { publisher } });
    await seedTarget(api.request, 'r1');
  }
  afterEach(async () => {
    vi.restoreAllMocks();
    await api.close();
  });

  const outbox = async () => (await api.store.query(keys.outboxPartition)).items;

  /** The same store and job ports under new services: what a restarted server builds. */
  function restart(next: EventPublisher) {
    const services = createServices({ store: api.store, ...api.jobs, clock: systemClock, catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL }, publisher: next });
    api.jobs.compute.onEvent = (event) => services.pipeline.applyEvent(event);
    return services;
  }

  async function runStim(): Promise<number> {
    await api.request('POST', STIM);
    const done = await waitForJob(api.request, STIM);
    expect(done.body.status, done.text).toBe('complete');
    return done.body.job_id as number;
  }

  it('publishes started and completed once per stim, with the job and its target', async () => {
    await start();
    const jobId = await runStim();
    await vi.waitFor(() => expect(publisher.events).toHaveLength(2), POLL);
    expect(publisher.events).toEqual([
      { id: `evt_job_${jobId}_running`, userId: ADMIN_USER, type: 'stim.started', timestamp: expect.any(String), data: { repo: 'r1', target: 't1', job_id: jobId, status: 'running', error: null } },
      { id: `evt_job_${jobId}_complete`, userId: ADMIN_USER, type: 'stim.completed', timestamp: expect.any(String), data: { repo: 'r1', target: 't1', job_id: jobId, status: 'complete', error: null } },
    ]);
    expect(publisher.events[1]!.timestamp).toBe((await api.store.get(keys.job(jobId)))!.updated_at);
    for (const event of publisher.events) expect(EVENT_PAYLOADS[event.type].safeParse(eventPayload(event)).success).toBe(true);
    // Each item is deleted once its event is published.
    await vi.waitFor(async () => expect(await outbox()).toEqual([]), POLL);
  });

  it('reports the start of a job whose running event never came, before its completion', async () => {
    await start();
    const forward = api.jobs.compute.onEvent;
    api.jobs.compute.onEvent = async (event) => (event.state === 'running' ? undefined : forward(event));
    const jobId = await runStim();
    await vi.waitFor(() => expect(publisher.events).toHaveLength(2), POLL);
    expect(publisher.events.map(({ id, type, data }) => ({ id, type, status: data.status }))).toEqual([
      { id: `evt_job_${jobId}_running`, type: 'stim.started', status: 'running' },
      { id: `evt_job_${jobId}_complete`, type: 'stim.completed', status: 'complete' },
    ]);
  });

  it('publishes a failed job with its error', async () => {
    await start();
    api.jobs.compute.script = () => ({ fail: 'CUDA out of memory' });
    await api.request('POST', STIM);
    const failed = await waitForJob(api.request, STIM);
    await vi.waitFor(() => expect(publisher.events.map((event) => event.type)).toEqual(['stim.started', 'stim.failed']), POLL);
    expect(publisher.events[1]!.data).toMatchObject({ job_id: failed.body.job_id, status: 'failed', error: failed.body.error });
    expect(failed.body.error).toContain('CUDA out of memory');
  });

  it('publishes a completed bake with its checkpoints as model names, newest first, and its loss', async () => {
    await start();
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const done = await completeBake(api, 'r1', 'b1', [10, 20]);
    await vi.waitFor(() => expect(publisher.events.map((event) => event.type)).toContain('bake.completed'), POLL);
    expect(publisher.events.map((event) => event.type)).toEqual([
      'stim.started', 'stim.completed', 'rollout.started', 'rollout.completed', 'bake.started', 'bake.completed',
    ]);
    const completed = publisher.events.at(-1)!;
    expect(completed.data).toEqual({
      repo: 'r1',
      bake: 'b1',
      job_id: done.body.job_id,
      status: 'complete',
      error: null,
      model_names: ['admin/r1/b1/20', 'admin/r1/b1/10'],
      loss: { latest_loss: 1, final_loss: 1, min_loss: 1, max_loss: 1 },
    });
    expect(EVENT_PAYLOADS['bake.completed'].safeParse(eventPayload(completed)).success).toBe(true);
  });

  it('keeps the events of a crash between the transition and its publishing, and publishes each once after a restart', async () => {
    await start();
    // The process dies right after each transition's transaction: nothing is drained.
    vi.spyOn(EventOutbox.prototype, 'drain').mockResolvedValue();
    const jobId = await runStim();
    await api.jobs.compute.idle();
    expect(publisher.events).toEqual([]);
    expect((await outbox()).map((item) => (item.event as DomainEvent).id).sort()).toEqual([`evt_job_${jobId}_complete`, `evt_job_${jobId}_running`]);
    vi.restoreAllMocks();

    const after = new RecordingPublisher();
    const services = restart(after);
    await services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    await services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect(after.events.map((event) => event.id).sort()).toEqual([`evt_job_${jobId}_complete`, `evt_job_${jobId}_running`]);
    expect(await outbox()).toEqual([]);
  });

  it('never lets a failing publisher stop a job, and publishes its events on the next sweep', async () => {
    await start();
    publisher.failing = true;
    const jobId = await runStim();
    // The job flow's own publishing attempts are over once the engine's run has returned.
    await api.jobs.compute.idle();
    expect(await outbox()).toHaveLength(2);

    publisher.failing = false;
    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect(publisher.events.map((event) => event.id)).toEqual([`evt_job_${jobId}_running`, `evt_job_${jobId}_complete`]);
    await api.services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
    expect(publisher.events).toHaveLength(2);
  });

  it('runs a pipeline to its end on the events it drains, publishing pipeline.completed once', async () => {
    await start();
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { checkpoints: [5] } : { lines: [{ stimulus_id: 0 }] });
    expect((await api.request('POST', '/v1/repo/r1/bakes/b1/pipeline')).status).toBe(202);
    const done = await vi.waitFor(async () => {
      const response = await api.request('GET', '/v1/repo/r1/bakes/b1/pipeline');
      expect(response.body.status).toBe('complete');
      return response.body;
    }, POLL);
    await vi.waitFor(() => expect(publisher.events.map((event) => event.type)).toContain('pipeline.completed'), POLL);
    expect(publisher.events.filter((event) => event.type === 'pipeline.completed')).toEqual([
      { id: `evt_pipeline_${ADMIN_USER}_r1_b1_1_complete`, userId: ADMIN_USER, type: 'pipeline.completed', timestamp: expect.any(String), data: { repo: 'r1', bake: 'b1', ...done } },
    ]);
    await vi.waitFor(async () => expect(await outbox()).toEqual([]), POLL);
  });

  it('publishes nothing again for a repeated compute event', async () => {
    await start();
    const jobId = await runStim();
    await vi.waitFor(() => expect(publisher.events).toHaveLength(2), POLL);
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'running' });
    await api.services.pipeline.applyEvent({ externalId: `test-${jobId}`, jobId, state: 'succeeded' });
    expect(publisher.events).toHaveLength(2);
  });
});

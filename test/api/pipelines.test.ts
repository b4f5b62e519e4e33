/**
 * Pipelines: one POST runs every missing job of a bake's recreation plan in dependency order,
 * advanced by job events (not by a waiting process), so it survives restarts; idempotent while
 * running, skipping complete steps, resuming at the failed step.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DomainEvent, EventPublisher } from '#core/events/events.ts';
import { EventOutbox } from '#core/events/job-events.ts';
import { createServices } from '#core/services.ts';
import { systemClock } from '#ports/clock.ts';
import { EVENT_TYPES, eventSchemaId } from '#schemas/events.ts';
import type { JobSpec } from '#schemas/job-spec.ts';
import { BASE_MODELS, createBake, createTarget, createTestApp, DEFAULT_BASE_MODEL, expectError, POLL, seedTarget, waitForJob, type ApiResponse, type TestApp } from '#test/support/app.ts';
import type { Scripted } from '#test/support/test-engine.ts';

const PIPELINE = '/v1/repo/r1/bakes/base/pipeline';
const CHILD_PIPELINE = '/v1/repo/r1/bakes/child/pipeline';

class RecordingPublisher implements EventPublisher {
  readonly events: DomainEvent[] = [];
  async publish(event: DomainEvent): Promise<void> {
    this.events.push(event);
  }
}

let api: TestApp;
let publisher: RecordingPublisher;
let engineDefault: (spec: JobSpec) => Scripted;

beforeEach(async () => {
  publisher = new RecordingPublisher();
  api = await createTestApp({ services: { publisher } });
  engineDefault = api.jobs.compute.script;
  api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { metrics: [{ iter: 1, loss: 0.5 }], checkpoints: [20] } : engineDefault(spec));
  await seedTarget(api.request, 'r1');
  await createBake(api.request, 'r1', 'base', { datasets: [{ target: 't1' }] });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await api.close();
});

/**
 * Bake `child` trains on target t2 from checkpoint 20 of bake `base`. A bake can name a parent
 * checkpoint only once it exists (bakes.ts), so `child` is created after `base` completed.
 */
async function createChild(): Promise<void> {
  await createTarget(api.request, 'r1', 't2');
  await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't2' }], model: { parent_model_name: 'admin/r1/base/20' } });
}

const names = (steps: { kind: string; name: string }[]) => steps.map(({ kind, name }) => ({ kind, name }));

/** Polls the pipeline until it is no longer running. */
async function waitForPipeline(path = PIPELINE): Promise<ApiResponse> {
  return vi.waitFor(async () => {
    const response = await api.request('GET', path);
    expect(response.body.status, response.text).not.toBe('running');
    return response;
  }, POLL);
}

/** What compute was asked to run, in order, as (kind, owner name). */
function submittedSteps(): { kind: string; name: string }[] {
  return api.jobs.compute.submitted.map(({ spec }) => {
    const { kind } = spec;
    if (kind === 'bake') return { kind, name: spec.bake!.model_name_prefix.split('/')[2]! };
    return { kind, name: '' };
  });
}

/** Holds every job of one kind running until `api.jobs.compute.finish`. */
function holdKind(kind: string): void {
  const script = api.jobs.compute.script;
  api.jobs.compute.script = (spec) => (spec.kind === kind ? { ...script(spec), hold: true } : script(spec));
}

describe('POST /v1/repo/{repo}/bakes/{bake}/pipeline', () => {
  it('runs stim then rollout of the target, then the bake, one after another', async () => {
    const started = await api.request('POST', PIPELINE);
    expect(started.status, started.text).toBe(202);
    expect(started.body.status).toBe('running');
    expect(names(started.body.steps)).toEqual([{ kind: 'stim', name: 't1' }, { kind: 'rollout', name: 't1' }, { kind: 'bake', name: 'base' }]);
    expect(started.body.steps.map((step: { status: string }) => step.status)).toEqual(['running', 'pending', 'pending']);
    expect(started.body.steps[0]).toMatchObject({ job_id: expect.any(Number), error: null });

    const done = await waitForPipeline();
    expect(done.body).toMatchObject({ status: 'complete', error: null });
    expect(done.body.steps.map((step: { status: string }) => step.status)).toEqual(['complete', 'complete', 'complete']);
    expect(submittedSteps().map(({ kind }) => kind)).toEqual(['stim', 'rollout', 'bake']);
    expect(api.jobs.compute.submitted.map(({ jobId }) => jobId)).toEqual(done.body.steps.map((step: { job_id: number }) => step.job_id));
    await vi.waitFor(() => expect(publisher.events.filter((event) => event.type.startsWith('pipeline.'))).toHaveLength(1), POLL);
    const completed = publisher.events.find((event) => event.type === 'pipeline.completed')!;
    expect(completed.data).toEqual({ repo: 'r1', bake: 'base', status: 'complete', error: null, steps: done.body.steps });
  });

  it('runs a bake on a parent bake: the parent and its targets first, then the new target and the bake', async () => {
    const parent = await api.request('POST', PIPELINE);
    expect((await waitForPipeline()).body.status, parent.text).toBe('complete');
    await createChild();

    const started = await api.request('POST', CHILD_PIPELINE);
    expect(started.status).toBe(202);
    expect(names(started.body.steps)).toEqual([
      { kind: 'stim', name: 't1' },
      { kind: 'rollout', name: 't1' },
      { kind: 'stim', name: 't2' },
      { kind: 'rollout', name: 't2' },
      { kind: 'bake', name: 'base' },
      { kind: 'bake', name: 'child' },
    ]);
    const done = await waitForPipeline(CHILD_PIPELINE);
    expect(done.body.status).toBe('complete');
    expect(submittedSteps()).toEqual([
      { kind: 'stim', name: '' },
      { kind: 'rollout', name: '' },
      { kind: 'bake', name: 'base' },
      { kind: 'stim', name: '' },
      { kind: 'rollout', name: '' },
      { kind: 'bake', name: 'child' },
    ]);
    const child = await api.request('GET', '/v1/repo/r1/bakes/child');
    expect(child.body).toMatchObject({ status: 'complete', model_name: ['admin/r1/child/20'] });
  });

  it('skips the steps whose jobs are already complete', async () => {
    for (const kind of ['stim', 'rollout']) {
      await api.request('POST', `/v1/repo/r1/targets/t1/${kind}`);
      expect((await waitForJob(api.request, `/v1/repo/r1/targets/t1/${kind}`)).body.status).toBe('complete');
    }
    const before = api.jobs.compute.submitted.map(({ jobId }) => jobId);

    const started = await api.request('POST', '/v1/repo/r1/bakes/base/pipeline');
    expect(started.body.steps).toEqual([
      { kind: 'stim', name: 't1', status: 'complete', job_id: before[0], error: null },
      { kind: 'rollout', name: 't1', status: 'complete', job_id: before[1], error: null },
      { kind: 'bake', name: 'base', status: 'running', job_id: expect.any(Number), error: null },
    ]);
    expect((await waitForPipeline('/v1/repo/r1/bakes/base/pipeline')).body.status).toBe('complete');
    expect(submittedSteps().map(({ kind }) => kind)).toEqual(['stim', 'rollout', 'bake']);
  });

  it('stops at a failed step with its error, and a new POST resumes from that step', async () => {
    const script = api.jobs.compute.script;
    api.jobs.compute.script = (spec) => (spec.kind === 'rollout' ? { fail: 'the teacher model ran out of memory' } : script(spec));
    await api.request('POST', PIPELINE);
    const failed = await waitForPipeline();
    expect(failed.body.status).toBe('failed');
    expect(failed.body.error).toMatch(/^The rollout job of target 't1' failed: .*the teacher model ran out of memory/);
    expect(failed.body.steps.map((step: { status: string }) => step.status)).toEqual(['complete', 'failed', 'pending']);
    expect(failed.body.steps[1].error).toContain('the teacher model ran out of memory');
    await vi.waitFor(() => expect(publisher.events.map((event) => event.type)).toContain('pipeline.failed'), POLL);
    expect(submittedSteps().map(({ kind }) => kind)).toEqual(['stim', 'rollout']);

    api.jobs.compute.script = script;
    const resumed = await api.request('POST', PIPELINE);
    expect(resumed.status).toBe(202);
    expect(resumed.body.status).toBe('running');
    expect(resumed.body.steps[0]).toEqual(failed.body.steps[0]);
    expect(resumed.body.steps[1]).toMatchObject({ status: 'running', error: null });
    expect(resumed.body.steps[1].job_id).not.toBe(failed.body.steps[1].job_id);
    expect((await waitForPipeline()).body.status).toBe('complete');
    // The stim is not run again: only the failed rollout and what follows it.
    expect(submittedSteps().map(({ kind }) => kind)).toEqual(['stim', 'rollout', 'rollout', 'bake']);
  });

  it('fails the pipeline with the reason when a step cannot start', async () => {
    await createTarget(api.request, 'r1', 't3', { generators: [] });
    await createBake(api.request, 'r1', 'orphan', { datasets: [{ target: 't3' }] });
    const started = await api.request('POST', '/v1/repo/r1/bakes/orphan/pipeline');
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: 'failed', error: "The stim job of target 't3' failed: Target must have generators and teacher prompt configured" });
    expect(started.body.steps[0]).toEqual({ kind: 'stim', name: 't3', status: 'failed', job_id: null, error: 'Target must have generators and teacher prompt configured' });
    expect(api.jobs.compute.submitted).toEqual([]);
  });

  it('returns the same pipeline to a repeated or concurrent POST while it runs, starting each job once', async () => {
    holdKind('stim');
    const [first, second] = await Promise.all([api.request('POST', PIPELINE), api.request('POST', PIPELINE)]);
    expect(second.body).toEqual(first.body);
    const third = await api.request('POST', PIPELINE);
    expect(third.body).toEqual(first.body);
    await vi.waitFor(() => expect(api.jobs.compute.submitted).toHaveLength(1), POLL);

    api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { checkpoints: [20] } : engineDefault(spec));
    await vi.waitFor(async () => {
      await api.jobs.compute.finish(first.body.steps[0].job_id);
    }, POLL);
    expect((await waitForPipeline()).body.status).toBe('complete');
    expect(api.jobs.compute.submitted).toHaveLength(3);
  });

  it('picks up the job it started when the server died before saving the pipeline', async () => {
    holdKind('stim');
    vi.spyOn(api.store, 'put').mockRejectedValueOnce(new Error('the server stopped'));
    expect((await api.request('POST', PIPELINE)).status).toBe(500);
    await vi.waitFor(() => expect(api.jobs.compute.submitted).toHaveLength(1), POLL);

    const retried = await api.request('POST', PIPELINE);
    expect(retried.status).toBe(202);
    expect(retried.body.steps[0]).toMatchObject({ status: 'running', job_id: api.jobs.compute.submitted[0]!.jobId });
    api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { checkpoints: [20] } : engineDefault(spec));
    await vi.waitFor(() => api.jobs.compute.finish(api.jobs.compute.submitted[0]!.jobId), POLL);
    expect((await waitForPipeline()).body.status).toBe('complete');
    expect(api.jobs.compute.submitted).toHaveLength(3);
  });

  it('starts the next step once when two drains take the same job event at once', async () => {
    holdKind('stim');
    const started = await api.request('POST', PIPELINE);
    await vi.waitFor(() => expect(api.jobs.compute.submitted).toHaveLength(1), POLL);
    const drain = vi.spyOn(EventOutbox.prototype, 'drain').mockResolvedValue();
    holdKind('rollout');
    await vi.waitFor(() => api.jobs.compute.finish(started.body.steps[0].job_id), POLL);
    expect((await waitForJob(api.request, '/v1/repo/r1/targets/t1/stim')).body.status).toBe('complete');
    drain.mockRestore();

    const sweep = () => api.services.pipeline.reconcile({ queuedGraceMs: 60_000, submitGraceMs: 60_000 });
    await Promise.all([sweep(), sweep(), sweep()]);
    await vi.waitFor(() => expect(submittedSteps().map(({ kind }) => kind)).toEqual(['stim', 'rollout']), POLL);
    const running = await api.request('GET', PIPELINE);
    expect(running.body.steps[1]).toMatchObject({ status: 'running', job_id: api.jobs.compute.submitted[1]!.jobId });
  });

  it('finishes after a restart that lost the job event which was to advance it', async () => {
    holdKind('stim');
    const started = await api.request('POST', PIPELINE);
    const stimJob = started.body.steps[0].job_id as number;
    await vi.waitFor(() => expect(api.jobs.compute.submitted).toHaveLength(1), POLL);

    // The server dies right after the stim's completion is recorded, before its event is drained.
    const drain = vi.spyOn(EventOutbox.prototype, 'drain').mockResolvedValue();
    api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { checkpoints: [20] } : engineDefault(spec));
    await vi.waitFor(() => api.jobs.compute.finish(stimJob), POLL);
    expect((await waitForJob(api.request, '/v1/repo/r1/targets/t1/stim')).body.status).toBe('complete');
    expect((await api.request('GET', PIPELINE)).body.steps[1].status).toBe('pending');
    drain.mockRestore();

    const restarted = createServices({ store: api.store, ...api.jobs, clock: systemClock, catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL }, publisher });
    api.jobs.compute.onEvent = (event) => restarted.pipeline.applyEvent(event);
    await restarted.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });

    const done = await waitForPipeline();
    expect(done.body.status).toBe('complete');
    expect(done.body.steps[0].job_id).toBe(stimJob);
    expect(api.jobs.compute.submitted).toHaveLength(3);
    expect(publisher.events.filter((event) => event.id === `evt_job_${stimJob}_complete`)).toHaveLength(1);
  });
});

describe('errors', () => {
  it('answers 404 to GET before any run, naming the call that starts one', async () => {
    const response = await api.request('GET', PIPELINE);
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Bake 'base' has no pipeline yet; start one with POST /v1/repo/r1/bakes/base/pipeline");
  });

  it('answers 404 for a bake or repo that does not exist', async () => {
    expectError(await api.request('POST', '/v1/repo/r1/bakes/ghost/pipeline'), 404, 'RESOURCE_NOT_FOUND', "Bake 'ghost' not found");
    expectError(await api.request('POST', '/v1/repo/nope/bakes/base/pipeline'), 404, 'RESOURCE_NOT_FOUND');
    expectError(await api.request('GET', '/v1/repo/nope/bakes/base/pipeline'), 404, 'RESOURCE_NOT_FOUND');
  });

  it('forgets the pipeline with its bake: a bake made again under the name has none', async () => {
    expect((await api.request('POST', PIPELINE)).status).toBe(202);
    expect((await waitForPipeline()).body.status).toBe('complete');
    const deleted = await api.request('DELETE', '/v1/repo/r1/bakes/base');
    expect(deleted.status, deleted.text).toBeLessThan(300);
    expectError(await api.request('GET', PIPELINE), 404, 'RESOURCE_NOT_FOUND', "Bake 'base' not found");
    await createBake(api.request, 'r1', 'base', { datasets: [{ target: 't1' }] });
    expectError(await api.request('GET', PIPELINE), 404, 'RESOURCE_NOT_FOUND', "Bake 'base' has no pipeline yet; start one with POST /v1/repo/r1/bakes/base/pipeline");
  });

  it('answers 422 to an invalid bake name', async () => {
    expectError(await api.request('POST', '/v1/repo/r1/bakes/bad%20name/pipeline'), 422, 'VALIDATION_ERROR');
  });
});

describe('OpenAPI', () => {
  it('documents the pipeline routes and every event payload as a versioned component', async () => {
    const { body: document } = await api.request('GET', '/openapi.json');
    const path = document.paths['/v1/repo/{repo_name}/bakes/{bake_name}/pipeline'];
    expect(path.post.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/PipelineResponse' });
    expect(Object.keys(path.post.responses)).toEqual(expect.arrayContaining(['202', '401', '404', '422']));
    expect(path.get.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/PipelineResponse' });
    for (const type of EVENT_TYPES) {
      const id = eventSchemaId(type);
      expect(document.webhooks[type].post.requestBody.content['application/json'].schema).toEqual({ $ref: `#/components/schemas/${id}` });
      expect(document.components.schemas[id].properties.version).toEqual({ type: 'number', enum: [1] });
    }
    expect(document.components.schemas.BakeCompletedEventV1.properties.data.required).toEqual(
      expect.arrayContaining(['repo', 'bake', 'job_id', 'status', 'error', 'model_names', 'loss']),
    );
  });
});

import type { Clock } from '../../ports/clock.ts';
import { ConditionFailedError, TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { RecreationPlan } from '../../schemas/bread.ts';
import type { PipelineResponse, PipelineStatus, PipelineStep } from '../../schemas/pipelines.ts';
import type { Actor } from '../actor.ts';
import { DomainError, NotFoundError } from '../errors.ts';
import type { DomainEvent } from '../events/events.ts';
import { outboxItem, type EventOutbox } from '../events/job-events.ts';
import type { BakeService } from '../bakes.ts';
import type { BakeJobs } from '../jobs/bake-jobs.ts';
import type { JobStatusView } from '../jobs/job-views.ts';
import type { TargetJobs } from '../jobs/target-jobs.ts';
import { keys } from '../keys.ts';
import type { RecipeService } from '../recipes.ts';
import type { RepoService } from '../repos.ts';

export type PipelineView = PipelineResponse;

/** A pipeline as stored: its view, whose it is, which run of it, and the compare-and-swap token. */
interface StoredPipeline extends PipelineView {
  userId: string;
  repo: string;
  bake: string;
  /** Counts the POSTs that started it afresh; part of its events' ids. */
  run: number;
  version: number;
  updated_at: string;
}

const PLAN_JOBS = { run_stim: 'stim', run_rollout: 'rollout', run_bake: 'bake' } as const;

/**
 * Runs the jobs of a bake's recreation plan (recipes.ts) one after another. Nothing waits: each
 * job event drained from the outbox advances the pipelines of its repo (`onEvent`), and every
 * advance reads the jobs' current state, so a repeated or late event, a restart or two drains at
 * once change nothing twice. Writes are compare-and-swap on the pipeline item, and the job starts
 * it makes are idempotent, so no step starts twice.
 */
export class PipelineService {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
    private readonly recipes: RecipeService,
    private readonly bakes: BakeService,
    private readonly targetJobs: TargetJobs,
    private readonly bakeJobs: BakeJobs,
    private readonly outbox: EventOutbox,
    private readonly clock: Clock,
  ) {}

  /**
   * Starts the bake's pipeline, or returns it as it is while it runs. A new run (after one
   * completed or failed) starts at the first step that is not complete.
   */
  async run(actor: Actor, repo: string, bake: string): Promise<PipelineView> {
    const plan = await this.recipes.recreationPlan(actor, repo, bake);
    for (;;) {
      const existing = (await this.store.get(keys.pipeline(actor.userId, repo, bake))) as StoredPipeline | undefined;
      if (existing?.status === 'running') return this.advance(actor, existing);
      const fresh: StoredPipeline = {
        userId: actor.userId,
        repo,
        bake,
        run: (existing?.run ?? 0) + 1,
        status: 'running',
        steps: stepsOf(plan),
        error: null,
        version: existing?.version ?? 0,
        updated_at: this.clock.now().toISOString(),
      };
      // The first step starts before the pipeline is saved: a crash in between leaves a job that
      // the repeated POST finds, never a saved pipeline with nothing running to advance it.
      const started = await this.nextState(actor, fresh);
      // A concurrent POST saved its run first: answer with that one.
      if (await this.save(existing ? fresh : undefined, started)) return view(started);
    }
  }

  async get(actor: Actor, repo: string, bake: string): Promise<PipelineView> {
    await this.repos.get(actor, repo);
    const item = await this.store.get(keys.pipeline(actor.userId, repo, bake));
    if (!item) {
      await this.bakes.getItem(actor, repo, bake); // a bake that does not exist is named as such
      throw new NotFoundError(`Bake '${bake}' has no pipeline yet; start one with POST /v1/repo/${repo}/bakes/${bake}/pipeline`);
    }
    return view(item as unknown as StoredPipeline);
  }

  /** The outbox listener: a job of a repo moved, so its running pipelines may move on. */
  async onEvent(event: DomainEvent): Promise<void> {
    if (!/^(stim|rollout|bake)\./.test(event.type)) return;
    const repo = event.data.repo as string;
    const { items } = await this.store.query(keys.pipelinePartition(event.userId, repo));
    const actor: Actor = { userId: event.userId, isAdmin: false };
    for (const item of items) {
      if (item.status === 'running') await this.advance(actor, item as unknown as StoredPipeline);
    }
  }

  /**
   * Walks the steps in order from the first one not complete: starts it when this run has not,
   * records a finished one, and stops at one still running or failed. Saves what changed.
   */
  private async advance(actor: Actor, pipeline: StoredPipeline): Promise<PipelineView> {
    for (;;) {
      const next = await this.nextState(actor, pipeline);
      if (JSON.stringify(view(next)) === JSON.stringify(view(pipeline))) return view(pipeline);
      if (await this.save(pipeline, next)) return view(next);
      const current = (await this.store.get(keys.pipeline(pipeline.userId, pipeline.repo, pipeline.bake))) as StoredPipeline | undefined;
      if (!current) throw new NotFoundError(`Bake '${pipeline.bake}' has no pipeline any more`);
      if (current.status !== 'running') return view(current);
      pipeline = current;
    }
  }

  private async nextState(actor: Actor, pipeline: StoredPipeline): Promise<StoredPipeline> {
    const steps = pipeline.steps.map((step) => ({ ...step }));
    let status: PipelineStatus = 'complete';
    let error: string | null = null;
    for (const step of steps) {
      if (step.status === 'complete') continue;
      const job = await this.jobOf(actor, pipeline.repo, step);
      step.status = job.status === 'not_started' ? 'failed' : job.status;
      step.job_id = job.job_id;
      step.error = job.error;
      if (job.status === 'complete') continue;
      if (step.status === 'failed') {
        status = 'failed';
        error = `The ${step.kind} job of ${step.kind === 'bake' ? 'bake' : 'target'} '${step.name}' failed: ${step.error ?? 'no reason was recorded'}`;
      } else {
        status = 'running';
      }
      break;
    }
    return { ...pipeline, steps, status, error, updated_at: this.clock.now().toISOString() };
  }

  /**
   * The step's job as it stands: started now when this run has not started it yet (a running or
   * complete job is returned as it is, a failed one replaced), else the owner's current job. A
   * start refused (a prerequisite unmet, the target deleted) fails the step with its reason.
   */
  private async jobOf(actor: Actor, repo: string, step: PipelineStep): Promise<Pick<JobStatusView, 'status' | 'job_id' | 'error'>> {
    try {
      if (step.kind === 'bake') {
        return step.status === 'pending' ? await this.bakeJobs.start(actor, repo, step.name) : await this.bakeJobs.get(actor, repo, step.name);
      }
      return step.status === 'pending'
        ? await this.targetJobs.start(actor, repo, step.name, step.kind)
        : await this.targetJobs.status(actor, repo, step.name, step.kind);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      return { status: 'failed', job_id: step.job_id, error: error.message };
    }
  }

  /**
   * Compare-and-swap on the pipeline's version (or creation, with no previous); a pipeline that
   * ends writes its event with it (the outbox), then publishes it.
   */
  private async save(previous: StoredPipeline | undefined, next: StoredPipeline): Promise<boolean> {
    const item = this.item({ ...next, version: (previous?.version ?? 0) + 1 });
    const condition = previous ? { equals: { version: previous.version } } : { exists: false };
    const event = next.status === 'running' ? undefined : pipelineEvent(next);
    try {
      if (event) await this.store.transact([{ kind: 'put', item, condition }, { kind: 'put', item: outboxItem(event, item.version as number) }]);
      else await this.store.put(item, condition);
    } catch (error) {
      if (error instanceof ConditionFailedError || error instanceof TransactionFailedError) return false;
      throw error;
    }
    if (event) await this.outbox.drain([event.id]);
    return true;
  }

  private item(pipeline: StoredPipeline): Item {
    return { ...keys.pipeline(pipeline.userId, pipeline.repo, pipeline.bake), ...pipeline };
  }
}

/** The plan's job steps (stim, rollout, bake), in its dependency order, none started. */
function stepsOf(plan: RecreationPlan): PipelineStep[] {
  return plan.steps.flatMap((step) => {
    const kind = PLAN_JOBS[step.action as keyof typeof PLAN_JOBS];
    return kind ? [{ kind, name: step.resource_name, status: 'pending' as const, job_id: null, error: null }] : [];
  });
}

function view(pipeline: StoredPipeline): PipelineView {
  return {
    status: pipeline.status,
    steps: pipeline.steps.map(({ kind, name, status, job_id, error }) => ({ kind, name, status, job_id, error })),
    error: pipeline.error,
  };
}

function pipelineEvent(pipeline: StoredPipeline): DomainEvent {
  const { userId, repo, bake, run, status } = pipeline;
  return {
    id: `evt_pipeline_${userId}_${repo}_${bake}_${run}_${status}`,
    userId,
    type: status === 'complete' ? 'pipeline.completed' : 'pipeline.failed',
    timestamp: pipeline.updated_at,
    data: { repo, bake, ...view(pipeline) },
  };
}

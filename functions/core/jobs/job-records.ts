import { TransactionFailedError, type Item, type Key, type Store } from '../../ports/store.ts';
import type { Clock } from '../../ports/clock.ts';
import type { LossSummary } from '../../schemas/bread.ts';
import type { JobKind } from '../../schemas/job-spec.ts';
import { jobOutboxItems } from '../events/job-events.ts';
import { keys } from '../keys.ts';
import { canTransition, isTerminal, type JobState } from './state-machine.ts';

/**
 * The item a job belongs to: a target (stim, rollout), a bake, the deployment's sampler slot
 * for one base model (`samplerOwner`), or a training run (its trainer).
 */
export interface JobOwner {
  userId: string;
  repo: string;
  /** Target name for stim and rollout, bake name for a bake, base model for a sampler, run id for a trainer. */
  name: string;
}

/** Samplers serve every user; their owner is a slot per base model, outside any user's repos. */
export function samplerOwner(baseModel: string): JobOwner {
  return { userId: '', repo: '', name: baseModel };
}

/** What the engine reported in result.json, kept once the job ends. */
export interface JobOutcome {
  lines?: number;
  checkpoints?: number[];
  loss?: LossSummary | null;
  unhonoured_config?: string[];
  applied_config?: string[];
}

export interface JobRecord extends JobOutcome {
  job_id: number;
  kind: JobKind;
  owner: JobOwner;
  state: JobState;
  error: string | null;
  external_id?: string;
  /** Rollout: stimuli × trajectories per stimulus. */
  total_expected?: number;
  /** Bake: the config as run, with the server-filled fields (bread-api.md §6.5). */
  config?: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  /** Bumped by every write: the compare-and-swap token. */
  version: number;
}

/** The attributes on the owner item that point at, and summarise, its current job of a kind. */
export const ownerAttributes = (kind: JobKind) => ({ id: `${kind}_job_id`, job: `${kind}_job` });

export function ownerKey(kind: JobKind, owner: JobOwner): Key {
  if (kind === 'sampler') return keys.sampler(owner.name);
  if (kind === 'trainer') return keys.trainingRun(owner.name);
  return keys.resource(owner.userId, owner.repo, kind === 'bake' ? 'bake' : 'target', owner.name);
}

/** The owner item's copy of its current job (written in the same transaction as the job). */
export function currentJob(ownerItem: Item, kind: JobKind): JobRecord | undefined {
  return ownerItem[ownerAttributes(kind).job] as JobRecord | undefined;
}

/**
 * Job items and their owner's copy, kept in step: every change to a job is one transaction
 * that also rewrites the owner's summary while the owner still points at that job.
 */
export class JobRecords {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async nextJobId(): Promise<number> {
    const counter = await this.store.update(keys.jobCounter(), { add: { value: 1 } });
    return counter.value as number;
  }

  /**
   * Records a new queued job as the owner's current one, provided the owner still points at
   * `replacing` (or at nothing). Returns false when a concurrent start won.
   */
  async create(job: JobRecord, replacing: number | undefined): Promise<boolean> {
    const { id, job: jobAttribute } = ownerAttributes(job.kind);
    try {
      await this.store.transact([
        { kind: 'put', item: this.jobItem(job), condition: { exists: false } },
        {
          kind: 'update',
          key: ownerKey(job.kind, job.owner),
          update: {
            set: { [id]: job.job_id, [jobAttribute]: job },
            condition: replacing === undefined ? { absent: [id] } : { equals: { [id]: replacing } },
            upsert: false,
          },
        },
      ]);
      return true;
    } catch (error) {
      if (error instanceof TransactionFailedError) return false;
      throw error;
    }
  }

  /** The owner's current job of a kind, as its item records it now. */
  async current(kind: JobKind, owner: JobOwner): Promise<JobRecord | undefined> {
    const item = await this.store.get(ownerKey(kind, owner));
    return item && currentJob(item, kind);
  }

  async get(jobId: number): Promise<JobRecord | undefined> {
    const item = await this.store.get(keys.job(jobId));
    return item && toRecord(item);
  }

  /**
   * Moves a job forward (never back: see state-machine.ts) and mirrors it onto its owner.
   * Returns the job as it stands afterwards, or undefined when there is no such job.
   */
  async transition(jobId: number, to: JobState, changes: Partial<JobRecord> = {}): Promise<JobRecord | undefined> {
    for (;;) {
      const job = await this.get(jobId);
      if (!job || !canTransition(job.state, to)) return job;
      const next: JobRecord = { ...job, ...changes, state: to, updated_at: this.clock.now().toISOString() };
      if (await this.replace(job, next)) return next;
    }
  }

  /**
   * Moves a queued job to submitted, returning it only to the one caller that made the move: a
   * concurrent claimer that finds it already submitted must not submit it again.
   */
  async claim(jobId: number): Promise<JobRecord | undefined> {
    for (;;) {
      const job = await this.get(jobId);
      if (job?.state !== 'queued') return undefined;
      const next: JobRecord = { ...job, state: 'submitted', updated_at: this.clock.now().toISOString() };
      if (await this.replace(job, next)) return next;
    }
  }

  /**
   * Records the compute id of a job just submitted. False when that compute job is not the job's:
   * the job was deleted meanwhile, or it was re-queued and another submit's id is already recorded.
   */
  async recordSubmission(jobId: number, externalId: string): Promise<boolean> {
    for (;;) {
      const job = await this.get(jobId);
      if (!job) return false;
      if (job.external_id) return job.external_id === externalId;
      if (isTerminal(job.state)) return true;
      if (await this.replace(job, { ...job, external_id: externalId, updated_at: this.clock.now().toISOString() })) return true;
    }
  }

  /** A job claimed for submission whose submit never finished goes back to the queue. */
  async requeue(jobId: number): Promise<boolean> {
    const job = await this.get(jobId);
    if (!job || job.state !== 'submitted' || job.external_id) return false;
    return this.replace(job, { ...job, state: 'queued', updated_at: this.clock.now().toISOString() });
  }

  async listActive(): Promise<JobRecord[]> {
    const { items } = await this.store.query({ pk: keys.activeJobsIndex.gsi1pk, index: 'gsi1' });
    return items.map(toRecord);
  }

  async delete(jobId: number): Promise<void> {
    await this.store.delete(keys.job(jobId));
  }

  /**
   * Compare-and-swap on the job's state, with the owner's copy updated alongside while the owner
   * still points at this job. Returns false when the job changed underneath (the caller re-reads).
   */
  private async replace(job: JobRecord, changed: JobRecord): Promise<boolean> {
    const next = { ...changed, version: job.version + 1 };
    const jobUpdate = {
      kind: 'put' as const,
      item: this.jobItem(next),
      condition: { equals: { version: job.version } },
    };
    const { id, job: jobAttribute } = ownerAttributes(job.kind);
    const ownerSet: Record<string, unknown> = { [jobAttribute]: next };
    // A bake's checkpoints live on the bake item, where model names are resolved.
    if (job.kind === 'bake' && next.state === 'complete') ownerSet.checkpoints = next.checkpoints ?? [];
    // The event of a state change is written with it (the outbox), so it outlives any crash.
    const events = jobOutboxItems(job, next).map((item) => ({ kind: 'put' as const, item }));
    try {
      await this.store.transact([
        jobUpdate,
        {
          kind: 'update',
          key: ownerKey(job.kind, job.owner),
          update: { set: ownerSet, condition: { equals: { [id]: job.job_id } }, upsert: false },
        },
        ...events,
      ]);
      return true;
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      if (error.failedOps.includes(0)) return false;
    }
    // The owner was deleted or moved on to a newer job: the job itself still advances, unreported
    // (its resource is gone or shows a newer job).
    try {
      await this.store.put(jobUpdate.item, jobUpdate.condition);
      return true;
    } catch {
      return false;
    }
  }

  private jobItem(job: JobRecord): Item {
    const active = !isTerminal(job.state);
    return {
      ...keys.job(job.job_id),
      ...job,
      ...(active ? { ...keys.activeJobsIndex, gsi1sk: `${job.created_at}#${job.job_id}` } : {}),
    };
  }
}

function toRecord(item: Item): JobRecord {
  const { pk: _pk, sk: _sk, gsi1pk: _gsi1pk, gsi1sk: _gsi1sk, ...record } = item;
  return record as unknown as JobRecord;
}

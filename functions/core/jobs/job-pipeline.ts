import type { Clock } from '../../ports/clock.ts';
import type { Compute, ComputeEvent } from '../../ports/compute.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { Item } from '../../ports/store.ts';
import { jobEventIds, type EventOutbox } from '../events/job-events.ts';
import type { JobKind, JobSpec } from '../../schemas/job-spec.ts';
import { failureSentence, userFacing, type FailureFacts } from './failure-reasons.ts';
import { currentJob, type JobOwner, type JobRecord, type JobRecords } from './job-records.ts';
import { isTerminal, type JobState } from './state-machine.ts';
import { jobPaths, type JobOutputs } from './job-outputs.ts';

export interface StartRequest {
  kind: JobKind;
  owner: JobOwner;
  /** The owner item as read just before (its current job decides what a start does). */
  ownerItem: Item;
  /** Checks prerequisites and builds the engine spec; throws a 400 when a prerequisite is unmet. */
  build: (jobId: number, outputUri: string) => Promise<{ spec: JobSpec; total_expected?: number; config?: Record<string, unknown> }>;
  /** Start afresh after a complete job too (a sampler that stopped when idle), not only a failed one. */
  restartComplete?: boolean;
}

export interface ReconcileOptions {
  /** A queued job older than this has its message sent again (0 at start-up: the local queue is gone). */
  queuedGraceMs: number;
  /** A job claimed for submission but without a compute id after this goes back to the queue. */
  submitGraceMs: number;
}

/**
 * The job flow of DESIGN.md §1: start (record + message), dispatch (claim, then submit),
 * compute events (applied monotonically), reconciliation, and clean-up when an owner is deleted.
 */
export class JobPipeline {
  constructor(
    private readonly records: JobRecords,
    private readonly outputs: JobOutputs,
    private readonly queue: JobQueue,
    private readonly compute: Compute,
    private readonly clock: Clock,
    private readonly outbox: EventOutbox,
    /** Hears every job that reached complete or failed (a run follows its trainer); must be idempotent. */
    private readonly onEnded: (job: JobRecord) => Promise<void> = async () => {},
  ) {}

  /**
   * Starts a job unless one is running or complete (bread-api.md §8.2): those are returned as
   * they are. A failed job is replaced by a fresh attempt, its outputs discarded.
   */
  async start(request: StartRequest): Promise<JobRecord> {
    const previous = currentJob(request.ownerItem, request.kind);
    const replaceable = previous?.state === 'failed' || (request.restartComplete === true && previous?.state === 'complete');
    if (previous && !replaceable) return previous;

    const jobId = await this.records.nextJobId();
    const { spec, total_expected, config } = await request.build(jobId, this.outputs.uriFor(jobPaths(jobId).prefix));
    await this.outputs.writeSpec(spec);
    const now = this.clock.now().toISOString();
    const job: JobRecord = {
      job_id: jobId,
      kind: request.kind,
      owner: request.owner,
      state: 'queued',
      error: null,
      ...(total_expected === undefined ? {} : { total_expected }),
      ...(config === undefined ? {} : { config }),
      created_at: now,
      updated_at: now,
      version: 0,
    };
    if (!(await this.records.create(job, previous?.job_id))) {
      // A concurrent start won; answer with its job, as a repeat of that call.
      await this.outputs.discard(jobId);
      return (await this.records.current(request.kind, request.owner)) ?? job;
    }
    if (previous) await this.discard(previous.job_id);
    // If this send is lost, the job stays queued and the reconciler sends it again.
    await this.queue.send({ jobId }).catch((error: unknown) => {
      console.error(JSON.stringify({ level: 'warn', msg: 'job message not sent; the reconciler will resend', jobId, error: String(error) }));
    });
    return job;
  }

  /**
   * Handles a queue message: claims the job (queued → submitted) so that a redelivered message
   * never submits twice, then submits it to compute.
   */
  async dispatch(jobId: number): Promise<void> {
    const claimed = await this.records.claim(jobId);
    if (!claimed || claimed.external_id) return;
    const spec = await this.outputs.readSpec(jobId);
    let externalId: string;
    try {
      externalId = await this.compute.submit({ jobId, kind: claimed.kind, specUri: this.outputs.uriFor(jobPaths(jobId).spec), spec });
    } catch (error) {
      await this.transition(jobId, 'failed', { error: userFacing(`The job could not be started: ${errorMessage(error)}`) });
      return;
    }
    if (!(await this.records.recordSubmission(jobId, externalId))) {
      // Nobody will follow this compute job (its record is gone or tracks another): stop it.
      await this.compute.terminate(externalId, 'Cancelled: its job was deleted or submitted again');
    }
  }

  /** Applies a compute state change; late and repeated events change nothing (state-machine.ts). */
  async applyEvent(event: ComputeEvent): Promise<JobRecord | undefined> {
    if (event.state === 'pending') return this.records.get(event.jobId);
    if (event.state === 'running') return this.transition(event.jobId, 'running', { external_id: event.externalId });
    const result = await this.outputs.result(event.jobId);
    if (event.state === 'succeeded' && result?.status === 'complete') {
      const { status: _status, error: _error, ...outcome } = result;
      return this.transition(event.jobId, 'complete', { ...outcome, error: null });
    }
    const job = await this.records.get(event.jobId);
    if (!job) return undefined;
    const error = await this.failureOf(job, {
      engineError: result?.error,
      exitedWithoutResult: event.state === 'succeeded',
      ...(event.failure ? { failure: event.failure } : {}),
    }, event.reason);
    return this.transition(event.jobId, 'failed', { error, ...(result?.lines === undefined ? {} : { lines: result.lines }) });
  }

  /**
   * Moves a job forward and publishes the event of the move at once; an event not published now
   * stays in the outbox (written with the move, job-records.ts) for the reconciler's drain.
   */
  private async transition(jobId: number, to: JobState, changes: Partial<JobRecord>): Promise<JobRecord | undefined> {
    const job = await this.records.transition(jobId, to, changes);
    if (job?.state === to) await this.outbox.drain(jobEventIds(jobId, to));
    if (job?.state === to && isTerminal(to)) {
      // A listener that fails now is repaired by its own sweep (the training service's); the move stands.
      await this.onEnded(job).catch((error: unknown) => {
        console.error(JSON.stringify({ level: 'warn', msg: 'job end not applied; the next sweep retries', jobId, error: String(error) }));
      });
    }
    return job;
  }

  /**
   * The sentence a failed job shows (failure-reasons.ts), from the engine's result, the
   * platform's facts and the last progress. The platform's own words go to the operators' log.
   */
  private async failureOf(job: JobRecord, facts: Omit<FailureFacts, 'kind' | 'owner' | 'percent'>, platformReason?: string): Promise<string> {
    if (!facts.engineError && (platformReason || facts.failure)) {
      console.error(JSON.stringify({ level: 'info', msg: 'job failed', jobId: job.job_id, kind: job.kind, reason: platformReason, failure: facts.failure }));
    }
    const percent = (await this.outputs.progress(job.job_id))?.percent;
    return failureSentence({ kind: job.kind, owner: job.owner, ...facts, ...(percent === undefined ? {} : { percent }) });
  }

  /**
   * Finds jobs stuck on the way (DESIGN.md §1 step 6): queued ones are sent again, claimed ones
   * whose submit never finished go back to the queue, and submitted or running ones are asked
   * about; a compute job that is gone fails its job with the reason. A claimed job whose submit
   * reached compute but whose id was lost is submitted again: the local adapter answers with the
   * compute job it already holds, so the job still runs once. Last, unpublished events are drained.
   */
  async reconcile(options: ReconcileOptions): Promise<void> {
    const now = this.clock.now().getTime();
    for (const job of await this.records.listActive()) {
      // One job that cannot be reconciled now (a throttled describe) must not hold up the rest.
      await this.reconcileJob(job, now - Date.parse(job.updated_at), options).catch((error: unknown) => {
        console.error(JSON.stringify({ level: 'warn', msg: 'job not reconciled; the next sweep retries', jobId: job.job_id, error: String(error) }));
      });
    }
    // Events left by a crash between a state change and its publishing, or by a publisher error.
    await this.outbox.drain();
  }

  private async reconcileJob(job: JobRecord, age: number, options: ReconcileOptions): Promise<void> {
    // An owner deleted while its clean-up was interrupted leaves its job behind: finish that now.
    if ((await this.records.current(job.kind, job.owner))?.job_id !== job.job_id) {
      await this.discard(job.job_id, ownerGone(job.kind));
      return;
    }
    if (job.state === 'queued') {
      if (age >= options.queuedGraceMs) await this.queue.send({ jobId: job.job_id });
    } else if (!job.external_id) {
      if (age >= options.submitGraceMs && (await this.records.requeue(job.job_id))) await this.queue.send({ jobId: job.job_id });
    } else {
      const { state, reason, failure } = await this.compute.describe(job.external_id);
      if (state === 'gone') {
        await this.transition(job.job_id, 'failed', { error: await this.failureOf(job, { failure: failure ?? { cause: 'vanished' } }, reason) });
      } else {
        await this.applyEvent({ externalId: job.external_id, jobId: job.job_id, state, ...(reason ? { reason } : {}), ...(failure ? { failure } : {}) });
      }
    }
  }

  /**
   * Stops one job for good: compute is asked to stop it (its failed event follows as usual), and
   * one not yet submitted fails at once, so no dispatch submits it later.
   */
  async stop(jobId: number, reason: string): Promise<void> {
    const job = await this.records.get(jobId);
    if (!job || isTerminal(job.state)) return;
    if (job.external_id) await this.compute.terminate(job.external_id, `Cancelled: ${reason}`);
    else await this.transition(jobId, 'failed', { error: userFacing(`The ${job.kind} was cancelled: ${reason}.`) });
  }

  /** Asks compute to stop every active job of a kind (the failed event follows as usual). */
  async terminateActive(kind: JobKind, reason: string): Promise<void> {
    for (const job of await this.records.listActive()) {
      if (job.kind === kind && job.external_id) await this.compute.terminate(job.external_id, reason);
    }
  }

  /** Stops and forgets every job of a deleted owner: compute, record and files. */
  async cleanUp(ownerItem: Item, kinds: JobKind[]): Promise<void> {
    for (const kind of kinds) {
      const job = currentJob(ownerItem, kind);
      if (job) await this.discard(job.job_id, ownerGone(kind));
    }
  }

  private async discard(jobId: number, cancelledBecause?: string): Promise<void> {
    const job = await this.records.get(jobId);
    if (job?.external_id && cancelledBecause && job.state !== 'complete' && job.state !== 'failed') {
      await this.compute.terminate(job.external_id, `Cancelled: ${cancelledBecause}`);
    }
    await this.records.delete(jobId);
    await this.outputs.discard(jobId);
  }
}

/** Why a job whose owner no longer points at it is cancelled. */
function ownerGone(kind: JobKind): string {
  if (kind === 'sampler') return 'a newer sampler replaced it';
  if (kind === 'trainer') return 'a newer trainer replaced it';
  return `its ${kind === 'bake' ? 'bake' : 'target'} was deleted`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

import type { Clock } from '../../ports/clock.ts';
import { TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import { TrainerResults, type HeldOperation, type TrainerOperationResult } from '../../schemas/trainer.ts';
import type { z } from 'zod';
import { NotFoundError } from '../errors.ts';
import type { EventOutbox } from '../events/job-events.ts';
import { userFacing } from '../jobs/failure-reasons.ts';
import type { JobRecord } from '../jobs/job-records.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import { keys } from '../keys.ts';
import type { CheckpointAddress } from './checkpoint-paths.ts';
import type { TrainingCheckpoints } from './checkpoints.ts';
import type { CheckpointTarget } from './model.ts';
import type { OperationQueue, Outcome } from './operation-queue.ts';
import type { RunMetrics } from './run-metrics.ts';
import { runKey, trainerJobOf } from './run-records.ts';
import { TrainerRetiredError, type TrainerPool } from './trainer-pool.ts';
import { checkpointSavedEvent, eventOutboxOp, runEvent } from './training-events.ts';

/** What the operation an idle-stopped trainer still held fails with (a trainer stops idle only with nothing in hand). */
const STOPPED_HOLDING = 'The trainer stopped before answering this operation, so it may not have run; submit it again.';

/** What a run's operations fail with when its trainer failed without a sentence of its own. */
const TRAINER_FAILED = 'The trainer stopped unexpectedly; create a new run from its last saved checkpoint to continue.';

export interface TrainerNext {
  operation: HeldOperation | null;
  idle_s: number;
}

/**
 * The trainer side of the relay (functions/schemas/trainer.ts) and the run's reactions to its
 * trainer's end. A trainer says when it is ready, long-polls for operations in order and posts
 * each result; a save's result becomes a checkpoint record before the operation is answered, and
 * a forward_backward's or optim_step's adds to the run's loss per step in the same write.
 * When its job ends, a failure fails the run and everything it had not answered; an idle exit
 * scales the run to zero, and a new trainer starts at once if operations arrived meanwhile.
 */
export class TrainerRelay {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly queue: OperationQueue,
    private readonly checkpoints: TrainingCheckpoints,
    private readonly pool: TrainerPool,
    private readonly outbox: EventOutbox,
    private readonly metrics: RunMetrics,
  ) {}

  /** The trainer loaded its model (and any autosaved state): the run is ready. */
  async ready(job: JobRecord, run: Item, ready: { lora_config: Record<string, unknown> }): Promise<void> {
    if (run.ready_job_id === job.job_id) return;
    const now = this.clock.now().toISOString();
    const event = runEvent(run, 'run.ready', now, job.job_id);
    try {
      await this.store.transact([
        {
          kind: 'update',
          key: runKey(run.id as string),
          update: { set: { ready_job_id: job.job_id, lora_config: ready.lora_config, updated_at: now }, condition: { equals: { trainer_job_id: job.job_id, state: 'active' } }, upsert: false },
        },
        eventOutboxOp(event),
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError) throw new TrainerRetiredError(job.job_id);
      throw error;
    }
    await this.outbox.drain([event.id]);
  }

  /**
   * Long poll: the operation the job already holds, else the oldest waiting one, else none once
   * `waitS` has passed. TrainerRetiredError when the job stops serving the run meanwhile.
   */
  async next(job: JobRecord, runId: string, waitS: number, signal?: AbortSignal): Promise<TrainerNext> {
    const deadline = Date.now() + waitS * 1000;
    for (;;) {
      const run = await this.store.get(runKey(runId));
      if (!run || run.state !== 'active' || run.trainer_job_id !== job.job_id) throw new TrainerRetiredError(job.job_id);
      const operation = (await this.queue.heldBy(run, job.job_id)) ?? (await this.queue.take(runId, job.job_id));
      if (operation || Date.now() >= deadline || signal?.aborted) {
        const idleMs = this.clock.now().getTime() - (run.last_activity_at as number);
        return { operation: operation ?? null, idle_s: Math.max(0, idleMs / 1000) };
      }
      await this.queue.untilRunChanges(runId, signal);
    }
  }

  /**
   * Stores the result of an operation the job holds; a repeat is accepted and changes nothing.
   * A save's checkpoint record is written first, and its event goes out with the answer.
   */
  async postResult(job: JobRecord, runId: string, operationId: string, posted: TrainerOperationResult): Promise<void> {
    const item = await this.queue.get(runId, operationId);
    if (!item) throw new NotFoundError(`Run ${runId} has no operation ${operationId}; post results only for operations this trainer was handed.`);
    if (item.state === 'done' || item.state === 'error') return;
    if (item.state !== 'held' || item.held_by !== job.job_id) throw new TrainerRetiredError(job.job_id);
    if (posted.status === 'error') {
      await this.finish(job, runId, operationId, { status: 'error', error: userFacing(posted.error), errorClass: posted.error_class });
      return;
    }
    if (item.kind !== 'save') {
      await this.finish(job, runId, operationId, { status: 'done', result: posted.result }, await this.metrics.recordWith(item, posted.result));
      return;
    }
    const result = TrainerResults.save.safeParse(posted.result);
    if (!result.success) {
      await this.finish(job, runId, operationId, { status: 'error', error: 'The trainer answered this save without a usable file list; save again.', errorClass: 'RuntimeError' });
      return;
    }
    await this.finishSave(job, runId, item, result.data);
  }

  /**
   * Applies the end of the run's trainer if it ended without that being applied (its event was
   * lost, or this is another process); returns the run as it stands.
   */
  async sync(run: Item): Promise<Item> {
    const job = trainerJobOf(run);
    if (run.state !== 'active' || !job || !isTerminal(job.state)) return run;
    await this.onJobEnded(job);
    return (await this.store.get(runKey(run.id as string))) ?? run;
  }

  /** Called with every trainer job that reached complete or failed (JobPipeline); repeats change nothing. */
  async onJobEnded(job: JobRecord): Promise<void> {
    const runId = job.owner.name;
    const run = await this.store.get(runKey(runId));
    if (!run || run.trainer_job_id !== job.job_id || run.state !== 'active') return;
    if (job.state === 'failed') {
      await this.fail(run, userFacing(job.error ?? TRAINER_FAILED));
      return;
    }
    await this.queue.failHeld(run, STOPPED_HOLDING, 'RuntimeError');
    if (await this.queue.hasWaiting(runId)) await this.pool.ensure((await this.store.get(runKey(runId))) ?? run);
  }

  private async fail(run: Item, error: string): Promise<void> {
    const runId = run.id as string;
    const now = this.clock.now().toISOString();
    const event = runEvent({ ...run, error }, 'run.failed', now);
    try {
      await this.store.transact([
        { kind: 'update', key: runKey(runId), update: { set: { state: 'failed', error, updated_at: now }, condition: { equals: { state: 'active' } }, upsert: false } },
        { kind: 'delete', key: keys.activeTrainingRun(runId) },
        eventOutboxOp(event),
      ]);
    } catch (failure) {
      if (failure instanceof TransactionFailedError) return;
      throw failure;
    }
    await this.outbox.drain([event.id]);
    await this.queue.failOutstanding(runId, error, 'RuntimeError');
  }

  private async finish(job: JobRecord, runId: string, operationId: string, outcome: Outcome, alongside: Parameters<OperationQueue['finish']>[4] = []): Promise<void> {
    if (!(await this.queue.finish(runId, operationId, job.job_id, outcome, alongside))) throw new TrainerRetiredError(job.job_id);
  }

  private async finishSave(job: JobRecord, runId: string, item: Item, result: z.infer<typeof TrainerResults.save>): Promise<void> {
    const run = await this.store.get(runKey(runId));
    if (!run) throw new TrainerRetiredError(job.job_id);
    const save = item.save as { target: CheckpointTarget; name: string; publish: boolean; ttl_seconds: number | null };
    const address: CheckpointAddress = { runId, target: save.target, name: save.name };
    const checkpoint = await this.checkpoints.record(run, { address, result, publish: save.publish, ttlSeconds: save.ttl_seconds });
    const event = checkpointSavedEvent(checkpoint, item.operation_id as string);
    await this.finish(job, runId, item.operation_id as string, { status: 'done', result: { ...result, path: checkpoint.path, checkpoint_id: checkpoint.name } }, [eventOutboxOp(event)]);
    await this.outbox.drain([event.id]);
  }
}

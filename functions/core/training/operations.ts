import { createHash } from 'node:crypto';
import type { Blobs } from '../../ports/blobs.ts';
import type { Item } from '../../ports/store.ts';
import type { TrainerOperation } from '../../schemas/trainer.ts';
import type { Actor } from '../actor.ts';
import { ValidationError } from '../errors.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import { assertCheckpointName, checkpointKind, checkpointPrefix, parseCheckpointPath, targetOfSave, type CheckpointAddress } from './checkpoint-paths.ts';
import { assertTtlSeconds, type TrainingCheckpoints } from './checkpoints.ts';
import type { OperationView, SubmittedOperation } from './model.ts';
import type { Accepted, OperationQueue } from './operation-queue.ts';
import { assertActive, trainerJobOf } from './run-records.ts';
import type { TrainingRuns } from './runs.ts';
import type { TrainerPool } from './trainer-pool.ts';
import type { TrainerRelay } from './trainer-relay.ts';

/** Longest idempotency key taken: keys are stored and echoed as operation ids. */
const MAX_KEY_LENGTH = 256;

/**
 * Operations on a run (loops-data-plane.md §6): accepted at once in the run's order, deduplicated
 * by idempotency key (which is also the operation's id), executed one at a time by the run's
 * trainer, and polled until their result arrives.
 */
export class TrainingOperations {
  constructor(
    private readonly blobs: Blobs,
    private readonly runs: TrainingRuns,
    private readonly checkpoints: TrainingCheckpoints,
    private readonly queue: OperationQueue,
    private readonly pool: TrainerPool,
    private readonly relay: TrainerRelay,
  ) {}

  /**
   * Accepts the operation without waiting for the trainer: stores it under the run's next
   * sequence number and wakes the trainer, starting one when the last scaled to zero. The same
   * key with the same operation answers with the first acceptance; with another, a conflict.
   */
  async submit(actor: Actor, runId: string, input: { idempotencyKey: string; operation: SubmittedOperation }): Promise<Accepted> {
    return this.accept(actor, runId, input, (run, key, digest, operation, attributes) => this.queue.accept(run, key, digest, operation, attributes));
  }

  /**
   * Accepts an operation numbered by the client (Tinker's `seq_id`, from 1 per run): it enters
   * the run's queue only once every lower number has, parked in the Store until then, so the
   * operations run in the client's order whatever order they arrive in. A number that stays
   * missing fails the waiting operations after a few minutes (TrainingSettings.sequenceGapS).
   * Deduplicated by key, as `submit` is.
   */
  async submitInOrder(actor: Actor, runId: string, input: { idempotencyKey: string; operation: SubmittedOperation; clientSeq: number }): Promise<{ operationId: string }> {
    return this.accept(actor, runId, input, (run, key, digest, operation, attributes) => this.queue.acceptInOrder(run, key, digest, operation, attributes, input.clientSeq));
  }

  private async accept<T>(
    actor: Actor,
    runId: string,
    input: { idempotencyKey: string; operation: SubmittedOperation },
    enqueue: (runId: string, key: string, digest: string, operation: TrainerOperation, attributes: Record<string, unknown>) => Promise<T>,
  ): Promise<T> {
    const key = input.idempotencyKey;
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new ValidationError(`Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters long; got ${key.length}.`);
    }
    const run = await this.relay.sync(await this.runs.find(actor, runId));
    assertActive(run);
    const { operation, attributes } = await this.engineOperation(actor, run, input.operation);
    const accepted = await enqueue(runId, key, digestOf(input.operation), operation, attributes);
    // Read again after accepting: a trainer that stopped idle before this operation arrived is
    // replaced now; one that stops later sees the operation waiting and is replaced on its way out.
    const fresh = await this.relay.sync(await this.runs.find(actor, runId));
    const job = trainerJobOf(fresh);
    if (fresh.state === 'active' && (!job || isTerminal(job.state))) await this.pool.ensure(fresh);
    return accepted;
  }

  /**
   * The operation's state, held up to `holdMs` while it is pending. Undefined for an id that is
   * unknown, past retention, or another run's or user's, so the caller can answer 404.
   */
  async poll(actor: Actor, runId: string, operationId: string, options: { holdMs: number; signal?: AbortSignal }): Promise<OperationView | undefined> {
    const run = await this.runs.lookup(actor, runId);
    if (!run) return undefined;
    const deadline = Date.now() + options.holdMs;
    for (;;) {
      const item = await this.queue.get(runId, operationId);
      if (!item) return undefined;
      const changed = await this.queue.failIfGapTooOld(item);
      const view = await this.queue.view((changed && (await this.queue.get(runId, operationId))) || item);
      if (view.status !== 'pending') return view;
      if (Date.now() >= deadline || options.signal?.aborted) {
        // A trainer whose end was not applied (its event lost) must not leave the operation waiting forever.
        await this.relay.sync((await this.runs.lookup(actor, runId)) ?? run);
        return view;
      }
      await this.queue.untilOperationChanges(runId, operationId, options.signal);
    }
  }

  /** The engine's operation: saves get their storage, loads the storage of the checkpoint they name. */
  private async engineOperation(actor: Actor, run: Item, submitted: SubmittedOperation): Promise<{ operation: TrainerOperation; attributes: Record<string, unknown> }> {
    if (submitted.kind === 'save') {
      assertCheckpointName(submitted.name);
      assertTtlSeconds(submitted.ttlSeconds);
      const address: CheckpointAddress = { runId: run.id as string, target: targetOfSave(submitted.what), name: submitted.name };
      // External weights are the sampler's PEFT adapter, written where downloads find them; they never move the policy version.
      const engineSave = submitted.what === 'external' ? { what: 'sampler' as const, publish: false } : { what: submitted.what, publish: submitted.publish };
      return {
        operation: { kind: 'save', ...engineSave, uri: this.blobs.uriFor(checkpointPrefix(address)) },
        attributes: { save: { target: address.target, name: address.name, publish: submitted.publish, ttl_seconds: submitted.ttlSeconds } },
      };
    }
    if (submitted.kind === 'load') {
      const checkpoint = await this.loadable(actor, run, submitted.path);
      return { operation: { kind: 'load', uri: this.blobs.uriFor(checkpointPrefix(checkpoint)), with_optimizer: submitted.withOptimizer }, attributes: {} };
    }
    // The result of a forward is shaped by its normalization when it is polled; a backward one counts toward the step's loss.
    return { operation: submitted, attributes: submitted.kind === 'forward' ? { normalization: submitted.normalization, backward: submitted.backward } : {} };
  }

  /** A `weights` checkpoint the caller can read, saved from the run's base model at its rank. */
  private async loadable(actor: Actor, run: Item, path: string) {
    if (!parseCheckpointPath(path)) throw new ValidationError(`path: '${path}' is not a checkpoint path; expected bt://loops:<run_id>/weights/<name>.`);
    const checkpoint = await this.checkpoints.resolve(actor, path);
    if (checkpoint.target !== 'trainer') {
      throw new ValidationError(`path: ${path} is ${checkpointKind(checkpoint.target)} and holds no training state; load a bt://loops:<run_id>/weights/<name> checkpoint.`);
    }
    if (checkpoint.baseModel !== run.base_model || checkpoint.loraConfig.r !== run.lora_rank) {
      throw new ValidationError(
        `path: ${path} was saved from ${checkpoint.baseModel} at LoRA rank ${checkpoint.loraConfig.r}, but this run trains ${run.base_model as string} at rank ${run.lora_rank as number}.`,
      );
    }
    return checkpoint;
  }
}

/** The same operation digests the same whatever the order of its keys. */
function digestOf(operation: SubmittedOperation): string {
  return createHash('sha256').update(canonicalJson(operation)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    // Token and tensor arrays (most of a 24 MiB body) are written natively: order is theirs already.
    if (value.every((item) => item === null || typeof item !== 'object')) return JSON.stringify(value);
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, field]) => field !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, field]) => `${JSON.stringify(name)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

import type { Clock } from '../../ports/clock.ts';
import { ignoreConditionFailed, TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.ts';
import type { EventOutbox } from '../events/job-events.ts';
import type { JobPipeline } from '../jobs/job-pipeline.ts';
import type { ModelChain } from '../jobs/model-chain.ts';
import { keys } from '../keys.ts';
import type { ModelResolver } from '../models.ts';
import { checkpointKind } from './checkpoint-paths.ts';
import type { TrainingCheckpoints } from './checkpoints.ts';
import { createWithNewId } from './ids.ts';
import type { TrainerPhase, TrainingProtocol, TrainingRun } from './model.ts';
import type { OperationQueue } from './operation-queue.ts';
import { assertActive, isOwnRun, phaseOf, runKey, toRun, trainerJobOf } from './run-records.ts';
import type { TrainingSessions } from './sessions.ts';
import type { TrainerPool } from './trainer-pool.ts';
import type { TrainerRelay } from './trainer-relay.ts';
import { eventOutboxOp, runEvent } from './training-events.ts';

/** The largest LoRA rank a run may ask for (the engine contract's bound). */
export const MAX_LORA_RANK = 512;

/** The longest a trainer idles before scaling to zero (loops-api.md §1.5: 1 to 3600 s). */
export const MAX_SCALE_DOWN_DELAY_S = 3600;

export interface CreateRunInput {
  sessionId: string;
  protocol: TrainingProtocol;
  /** A catalog base model, or a baked checkpoint `user/repo/bake/step` the caller can read. */
  baseModel: string;
  loraRank: number;
  seed: number | null;
  maxSeqLen: number | null;
  name: string | null;
  availabilityModel: 'dedicated' | 'spot';
  scaleDownDelaySeconds: number;
  /** A `weights` checkpoint to start from; the client then loads it with a load operation. */
  fromPath: string | null;
  /** Where the run's trainers reach this API's relay routes (the origin requests arrive at, as for chat). */
  relayUrl: string;
  /**
   * A front's own name for the run (Tinker's `model_id`), unique: creating a run under an alias
   * the caller already holds answers with that run, so a retried create makes one run.
   */
  alias?: string;
}

export interface RunFilter {
  runId?: string;
  baseModel?: string;
}

/** What a create under an alias held by another run answers inside its id draw. */
const aliasTaken = Symbol('alias taken');

/** What the operations of a deactivated run fail with. */
export const DEACTIVATED = 'The run was deactivated before this operation ran; its checkpoints are kept, so create a new run from one to continue training.';

/**
 * Training runs: created with their trainer starting at once, read, listed, and deactivated
 * for good. A run belongs to its creator; anyone else's run is not found.
 */
export class TrainingRuns {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly models: ModelResolver,
    private readonly chain: ModelChain,
    private readonly sessions: TrainingSessions,
    private readonly checkpoints: TrainingCheckpoints,
    private readonly pool: TrainerPool,
    private readonly pipeline: JobPipeline,
    private readonly queue: OperationQueue,
    private readonly relay: TrainerRelay,
    private readonly outbox: EventOutbox,
  ) {}

  async create(actor: Actor, input: CreateRunInput): Promise<TrainingRun> {
    await this.sessions.get(actor, input.sessionId);
    if (!Number.isInteger(input.loraRank) || input.loraRank < 1 || input.loraRank > MAX_LORA_RANK) {
      throw new InvalidInputError(`lora_rank must be a whole number from 1 to ${MAX_LORA_RANK}; got ${input.loraRank}.`);
    }
    if (!Number.isInteger(input.scaleDownDelaySeconds) || input.scaleDownDelaySeconds < 1 || input.scaleDownDelaySeconds > MAX_SCALE_DOWN_DELAY_S) {
      throw new InvalidInputError(`scale_down_delay_seconds must be a whole number from 1 to ${MAX_SCALE_DOWN_DELAY_S}; got ${input.scaleDownDelaySeconds}.`);
    }
    if (input.maxSeqLen !== null && (!Number.isInteger(input.maxSeqLen) || input.maxSeqLen < 1)) {
      throw new InvalidInputError(`max_seq_len must be a positive whole number; got ${input.maxSeqLen}.`);
    }
    const modelSpec = await this.modelSpec(actor, input.baseModel);
    if (input.fromPath !== null) await this.assertStartingPoint(actor, input);
    if (input.alias !== undefined) {
      const existing = await this.findByAlias(actor, input.alias);
      if (existing) return existing;
    }
    const now = this.clock.now();
    const run = await createWithNewId(async (id) => {
      const item: Item = {
        ...runKey(id),
        ...keys.trainingRunIndex(actor.userId),
        gsi1sk: `${now.toISOString()}#${id}`,
        id,
        user_id: actor.userId,
        session_id: input.sessionId,
        protocol: input.protocol,
        name: input.name,
        base_model: input.baseModel,
        model_spec: modelSpec,
        lora_rank: input.loraRank,
        seed: input.seed,
        max_seq_len: input.maxSeqLen,
        availability_model: input.availabilityModel,
        scale_down_delay_seconds: input.scaleDownDelaySeconds,
        from_path: input.fromPath,
        relay_url: input.relayUrl,
        alias: input.alias ?? null,
        state: 'active',
        error: null,
        op_seq: 0,
        last_activity_at: now.getTime(),
        created_at: now.toISOString(),
        updated_at: now.toISOString(),
      };
      const event = runEvent(item, 'run.created', now.toISOString());
      try {
        await this.store.transact([
          { kind: 'put', item, condition: { exists: false } },
          { kind: 'put', item: { ...keys.activeTrainingRun(id) } },
          eventOutboxOp(event),
          ...(input.alias === undefined ? [] : [{ kind: 'put' as const, item: { ...keys.trainingRunAlias(input.alias), run_id: id, user_id: actor.userId }, condition: { exists: false } }]),
        ]);
      } catch (error) {
        if (error instanceof TransactionFailedError && error.failedOps.includes(0)) return undefined;
        if (error instanceof TransactionFailedError && error.failedOps.includes(3)) return aliasTaken;
        throw error;
      }
      await this.outbox.drain([event.id]);
      return item;
    });
    if (run === aliasTaken) {
      // A concurrent create under the same alias won.
      const winner = await this.findByAlias(actor, input.alias as string);
      if (!winner) throw new ConflictError(`The name '${input.alias as string}' already belongs to another run; choose another.`);
      return winner;
    }
    await this.pool.ensure(run);
    return toRun((await this.store.get(runKey(run.id as string))) ?? run);
  }

  /** The caller's run under the alias; undefined when there is none (or it is someone else's). */
  async findByAlias(actor: Actor, alias: string): Promise<TrainingRun | undefined> {
    const pointer = await this.store.get(keys.trainingRunAlias(alias));
    const run = pointer && (await this.lookup(actor, pointer.run_id as string));
    return run ? toRun(run) : undefined;
  }

  async get(actor: Actor, runId: string): Promise<TrainingRun> {
    return toRun(await this.find(actor, runId));
  }

  /** The caller's runs, newest first. */
  async list(actor: Actor, filter: RunFilter = {}): Promise<TrainingRun[]> {
    const { items } = await this.store.query({ pk: keys.trainingRunIndex(actor.userId).gsi1pk, index: 'gsi1', descending: true });
    return items
      .filter((item) => (filter.runId === undefined || item.id === filter.runId) && (filter.baseModel === undefined || item.base_model === filter.baseModel))
      .map(toRun);
  }

  /**
   * Stops the run for good: its trainer is terminated and its unanswered operations fail; its
   * checkpoints stay. Deactivating an inactive or failed run changes nothing.
   */
  async deactivate(actor: Actor, runId: string): Promise<TrainingRun> {
    const run = await this.find(actor, runId);
    if (run.state !== 'active') return toRun(run);
    const now = this.clock.now().toISOString();
    const stopped = { ...run, state: 'inactive', updated_at: now };
    const event = runEvent(stopped, 'run.stopped', now);
    try {
      await this.store.transact([
        { kind: 'update', key: runKey(runId), update: { set: { state: 'inactive', updated_at: now }, condition: { equals: { state: 'active' } }, upsert: false } },
        { kind: 'delete', key: keys.activeTrainingRun(runId) },
        eventOutboxOp(event),
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      // Deactivated or failed meanwhile.
      return this.get(actor, runId);
    }
    await this.outbox.drain([event.id]);
    const job = trainerJobOf(run);
    if (job) await this.pipeline.stop(job.job_id, 'the run was deactivated');
    await this.queue.failOutstanding(runId, DEACTIVATED, 'RuntimeError');
    this.queue.notifyRun(runId);
    return this.get(actor, runId);
  }

  /**
   * Where the run's trainer is. RunInactiveError when the run no longer takes operations. Every
   * call counts as activity: it holds off the trainer's scale to zero (TrainerNextResponse.idle_s).
   */
  async health(actor: Actor, runId: string): Promise<TrainerPhase> {
    const run = await this.relay.sync(await this.find(actor, runId));
    assertActive(run);
    await this.store
      .update(runKey(runId), { set: { last_activity_at: this.clock.now().getTime() }, condition: { equals: { state: 'active' } }, upsert: false })
      .catch(ignoreConditionFailed);
    return phaseOf(run);
  }

  /** The caller's run item; NotFoundError for a run that is missing or someone else's. */
  async find(actor: Actor, runId: string): Promise<Item> {
    const run = await this.lookup(actor, runId);
    if (!run) throw new NotFoundError(`Training run '${runId}' not found for this API key; check the run id, or list your runs to find it.`);
    return run;
  }

  /** The caller's run item, or undefined for a run that is missing or someone else's. */
  async lookup(actor: Actor, runId: string): Promise<Item | undefined> {
    const run = await this.store.get(runKey(runId));
    return isOwnRun(actor, run) ? run : undefined;
  }

  /**
   * What the trainer loads for a base model: a catalog model, or a baked checkpoint with its
   * adapter chain merged in (ModelChain).
   */
  async modelSpec(actor: Actor, baseModel: string): Promise<ModelSpec> {
    const allowed = this.models.baseModels().join(', ');
    return this.chain.spec(
      actor,
      baseModel,
      `The base model '${baseModel}' is not available; use one of ${allowed}, or a baked checkpoint 'user/repo/bake/step' of yours.`,
    );
  }

  /** A run made from saved state starts from a `weights` checkpoint of the same base model and rank. */
  private async assertStartingPoint(actor: Actor, input: CreateRunInput): Promise<void> {
    const path = input.fromPath as string;
    const checkpoint = await this.checkpoints.resolve(actor, path);
    if (checkpoint.target !== 'trainer') {
      throw new InvalidInputError(`${path} is ${checkpointKind(checkpoint.target)} and holds no training state; start a run from a bt://loops:<run_id>/weights/<name> checkpoint.`);
    }
    if (checkpoint.baseModel !== input.baseModel) {
      throw new InvalidInputError(`${path} was trained on ${checkpoint.baseModel}; create the run with base_model ${checkpoint.baseModel}.`);
    }
    if (checkpoint.loraConfig.r !== input.loraRank) {
      throw new InvalidInputError(`${path} has LoRA rank ${checkpoint.loraConfig.r}; create the run with lora_rank ${checkpoint.loraConfig.r}.`);
    }
  }
}

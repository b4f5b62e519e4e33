import type { Clock } from '../../ports/clock.ts';
import { TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.ts';
import { keys } from '../keys.ts';
import { whatItHolds } from './checkpoint-paths.ts';
import type { TrainingCheckpoints } from './checkpoints.ts';
import { createWithNewId } from './ids.ts';
import type { TrainingSampler } from './model.ts';
import { assertActive, runModelSpec } from './run-records.ts';
import type { TrainingRuns } from './runs.ts';
import type { TrainingSessions } from './sessions.ts';

/** `alias`: a front's own name for the sampler (Tinker's `sampling_session_id`); a create under one the caller holds answers with that sampler. */
export type StandaloneSamplerInput = ({ sessionId: string; baseModel: string } | { sessionId: string; modelPath: string }) & { alias?: string };

/**
 * Sampler records (loops-data-plane.md §4.2): paired with a run (one per run, whoever asks
 * first) or standalone on a base model or a `sampler_weights` checkpoint. Sampling itself is
 * the sampler engine's, reached through sampling.ts; these records say what a sampler serves.
 */
export class TrainingSamplers {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly sessions: TrainingSessions,
    private readonly runs: TrainingRuns,
    private readonly checkpoints: TrainingCheckpoints,
  ) {}

  /** The run's sampler, created on the first call; later calls answer with the same one. */
  async createPaired(actor: Actor, input: { sessionId: string; runId: string }): Promise<TrainingSampler> {
    await this.sessions.get(actor, input.sessionId);
    const run = await this.runs.find(actor, input.runId);
    const pairing = await this.store.get(keys.trainingRunSampler(input.runId));
    if (pairing) return this.get(actor, pairing.sampler_id as string);
    assertActive(run);
    const created = await this.create(actor, input.sessionId, { runId: input.runId, baseModel: run.base_model as string, modelPath: null, modelSpec: runModelSpec(run) });
    if (created) return created;
    // Another call paired the run first.
    const winner = await this.store.get(keys.trainingRunSampler(input.runId));
    return this.get(actor, winner?.sampler_id as string);
  }

  /** A sampler of a base model (validated as a run's is), or of a `sampler_weights` checkpoint the caller can read. */
  async createStandalone(actor: Actor, input: StandaloneSamplerInput): Promise<TrainingSampler> {
    await this.sessions.get(actor, input.sessionId);
    if (input.alias !== undefined) {
      const existing = await this.findByAlias(actor, input.alias);
      if (existing) return existing;
    }
    if ('modelPath' in input) {
      const checkpoint = await this.checkpoints.resolve(actor, input.modelPath);
      if (checkpoint.target !== 'sampler') {
        throw new InvalidInputError(`${input.modelPath} holds ${whatItHolds(checkpoint.target)}, which a sampler cannot load; use a bt://loops:<run_id>/sampler_weights/<name> checkpoint.`);
      }
      const run = await this.store.get(keys.trainingRun(checkpoint.runId));
      if (!run) throw new NotFoundError(`Checkpoint ${input.modelPath} not found for this API key; check the path, or list your checkpoints to find it.`);
      return this.createUnpaired(actor, input.sessionId, { baseModel: checkpoint.baseModel, modelPath: checkpoint.path, modelSpec: runModelSpec(run) }, input.alias);
    }
    const modelSpec = await this.runs.modelSpec(actor, input.baseModel);
    return this.createUnpaired(actor, input.sessionId, { baseModel: input.baseModel, modelPath: null, modelSpec }, input.alias);
  }

  /** The caller's sampler under the alias; undefined when there is none (or it is someone else's). */
  async findByAlias(actor: Actor, alias: string): Promise<TrainingSampler | undefined> {
    const pointer = await this.store.get(keys.trainingSamplerAlias(alias));
    const item = pointer && (await this.store.get(keys.trainingSampler(pointer.sampler_id as string)));
    return item?.user_id === actor.userId ? toSampler(item) : undefined;
  }

  async get(actor: Actor, samplerId: string): Promise<TrainingSampler> {
    const item = await this.store.get(keys.trainingSampler(samplerId));
    if (item?.user_id !== actor.userId) throw new NotFoundError(`Sampler '${samplerId}' not found for this API key; check the sampler id, or create a sampler.`);
    return toSampler(item);
  }

  /** The caller's samplers, newest first. */
  async list(actor: Actor): Promise<TrainingSampler[]> {
    const { items } = await this.store.query({ pk: keys.trainingSamplerIndex(actor.userId).gsi1pk, index: 'gsi1', descending: true });
    return items.map(toSampler);
  }

  /** The base model with its adapter chain that the sampler serves when no checkpoint is asked for (its model_path's run's chain first). */
  async baseSpec(sampler: TrainingSampler): Promise<ModelSpec> {
    const item = await this.store.get(keys.trainingSampler(sampler.id));
    if (!item) throw new NotFoundError(`Sampler '${sampler.id}' was deleted meanwhile; create a new sampler.`);
    return item.model_spec as ModelSpec;
  }

  private async createUnpaired(
    actor: Actor,
    sessionId: string,
    what: { baseModel: string; modelPath: string | null; modelSpec: ModelSpec },
    alias: string | undefined,
  ): Promise<TrainingSampler> {
    const created = await this.create(actor, sessionId, { runId: null, ...what }, alias);
    if (created) return created;
    // Null answers a lost race for the alias: the winner's sampler, if it is the caller's.
    const winner = await this.findByAlias(actor, alias as string);
    if (!winner) throw new ConflictError(`The name '${alias as string}' already belongs to another sampler; choose another.`);
    return winner;
  }

  /**
   * Writes a new sampler; for a paired one, with the run's pairing in the same transaction, and
   * for one with an alias, with the alias. Null when the run was paired (or the alias taken) meanwhile.
   */
  private create(
    actor: Actor,
    sessionId: string,
    what: { runId: string | null; baseModel: string; modelPath: string | null; modelSpec: ModelSpec },
    alias?: string,
  ): Promise<TrainingSampler | null> {
    const createdAt = this.clock.now().toISOString();
    return createWithNewId<TrainingSampler | null>(async (id) => {
      const item: Item = {
        ...keys.trainingSampler(id),
        ...keys.trainingSamplerIndex(actor.userId),
        gsi1sk: `${createdAt}#${id}`,
        id,
        user_id: actor.userId,
        session_id: sessionId,
        run_id: what.runId,
        base_model: what.baseModel,
        model_path: what.modelPath,
        model_spec: what.modelSpec,
        alias: alias ?? null,
        created_at: createdAt,
      };
      const claimKey = what.runId !== null ? keys.trainingRunSampler(what.runId) : alias !== undefined ? keys.trainingSamplerAlias(alias) : undefined;
      const claim = claimKey ? [{ kind: 'put' as const, item: { ...claimKey, sampler_id: id }, condition: { exists: false } }] : [];
      try {
        await this.store.transact([{ kind: 'put', item, condition: { exists: false } }, ...claim]);
        return toSampler(item);
      } catch (error) {
        if (!(error instanceof TransactionFailedError)) throw error;
        // The claim taken means another call paired the run (or took the alias); the sampler id taken, a fresh draw.
        return error.failedOps.includes(1) ? null : undefined;
      }
    });
  }
}

function toSampler(item: Item): TrainingSampler {
  return {
    id: item.id as string,
    userId: item.user_id as string,
    sessionId: item.session_id as string,
    runId: item.run_id as string | null,
    baseModel: item.base_model as string,
    modelPath: item.model_path as string | null,
    ...(typeof item.alias === 'string' ? { alias: item.alias } : {}),
    createdAt: item.created_at as string,
  };
}

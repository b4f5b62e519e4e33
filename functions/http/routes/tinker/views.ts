/**
 * The training service's runs, samplers and checkpoints as the Tinker front names and shows them
 * (loops-api.md §2.4, §2.6, §2.12): a run's `model_id` is its alias (`{session_id}:train:{n}`), or
 * its id for a run made through Loops; a sampler's `sampling_session_id` likewise; checkpoints carry
 * `tinker://<model_id>/…` twins of their `bt://` paths.
 */
import type { Actor } from '#core/actor.ts';
import { NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { tinkerCheckpointId, tinkerCheckpointPath } from '#core/training/checkpoint-paths.ts';
import type { TrainingCheckpoint, TrainingRun, TrainingSampler } from '#core/training/model.ts';
import type { TinkerCheckpoint, TinkerTrainingRun } from '#schemas/tinker.ts';

type Training = Services['training'];

export const modelIdOf = (run: Pick<TrainingRun, 'id' | 'alias'>) => run.alias ?? run.id;
export const samplingSessionIdOf = (sampler: Pick<TrainingSampler, 'id' | 'alias'>) => sampler.alias ?? sampler.id;

/** The run a `model_id` names: by alias first, then as a run id. */
export async function runOfModel(training: Training, actor: Actor, modelId: string): Promise<TrainingRun> {
  const byAlias = await training.runs.findByAlias(actor, modelId);
  if (byAlias) return byAlias;
  try {
    return await training.runs.get(actor, modelId);
  } catch (error) {
    if (error instanceof NotFoundError) throw new NotFoundError(`Model '${modelId}' not found; create it with create_model, or list yours with GET /api/v1/training_runs.`);
    throw error;
  }
}

/** The sampler a `sampling_session_id` names: by alias first, then as a sampler id. */
export async function samplerOfSession(training: Training, actor: Actor, samplingSessionId: string): Promise<TrainingSampler> {
  const byAlias = await training.samplers.findByAlias(actor, samplingSessionId);
  if (byAlias) return byAlias;
  try {
    return await training.samplers.get(actor, samplingSessionId);
  } catch (error) {
    if (error instanceof NotFoundError) throw new NotFoundError(`Sampling session '${samplingSessionId}' not found; create one with create_sampling_session.`);
    throw error;
  }
}

const CHECKPOINT_TYPE: Record<TrainingCheckpoint['target'], TinkerCheckpoint['checkpoint_type']> = { trainer: 'training', sampler: 'sampler', external: 'external' };

export function checkpointView(checkpoint: TrainingCheckpoint, modelId: string): TinkerCheckpoint {
  return {
    checkpoint_id: tinkerCheckpointId(checkpoint),
    checkpoint_type: CHECKPOINT_TYPE[checkpoint.target],
    time: checkpoint.createdAt,
    tinker_path: tinkerCheckpointPath(modelId, checkpoint),
    size_bytes: checkpoint.sizeBytes,
    public: checkpoint.public,
    expires_at: checkpoint.expiresAt,
    base_model: checkpoint.baseModel,
  };
}

/** A run with its newest training and sampler checkpoints (`checkpoints` oldest first, as the service lists them). */
export function trainingRunView(run: TrainingRun, checkpoints: readonly TrainingCheckpoint[]): TinkerTrainingRun {
  const modelId = modelIdOf(run);
  const newest = (target: TrainingCheckpoint['target']) => checkpoints.filter((checkpoint) => checkpoint.target === target).at(-1);
  const last = newest('trainer');
  const lastSampler = newest('sampler');
  return {
    training_run_id: modelId,
    base_model: run.baseModel,
    model_owner: run.userId,
    is_lora: true,
    corrupted: run.state === 'failed',
    lora_rank: run.loraRank,
    last_request_time: run.updatedAt,
    last_checkpoint: last ? checkpointView(last, modelId) : null,
    last_sampler_checkpoint: lastSampler ? checkpointView(lastSampler, modelId) : null,
    user_metadata: null,
  };
}

/** A `bt://` path (what the service stores) shown as its `tinker://` twin, for the caller's checkpoints and public ones. */
export async function tinkerPathOf(training: Training, actor: Actor, path: string): Promise<string> {
  const checkpoint = await training.checkpoints.readable(actor, path);
  if (!checkpoint) return path;
  const run = checkpoint.userId === actor.userId ? await training.runs.get(actor, checkpoint.runId) : (await training.checkpoints.sharedRun(checkpoint.runId))?.run;
  return run ? tinkerCheckpointPath(modelIdOf(run), checkpoint) : path;
}

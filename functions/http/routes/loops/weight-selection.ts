/**
 * Which weights a `/sample` request gets (loops-data-plane.md §10.2), from the sampler its path
 * names and the routing headers the SDK fixed when it built the sampling client.
 */
import type { Actor } from '#core/actor.ts';
import { ValidationError } from '#core/errors.ts';
import type { TrainingCheckpoint, TrainingSampler } from '#core/training/model.ts';

export interface RoutingHeaders {
  checkpointPath?: string;
  runId?: string;
  samplerId?: string;
}

/** What the sampling service is asked to serve: an adapter by path, or (null) the base model; the run a paired client samples for. */
export interface WeightChoice {
  checkpointPath: string | null;
  runId: string | null;
}

type ResolveCheckpoint = (actor: Actor, path: string) => Promise<TrainingCheckpoint>;

export async function selectWeights(
  resolve: ResolveCheckpoint,
  actor: Actor,
  sampler: TrainingSampler,
  headers: RoutingHeaders,
  lora: string | null | undefined,
): Promise<WeightChoice> {
  if (headers.samplerId !== undefined && headers.samplerId !== sampler.id) {
    throw new ValidationError(`X-Sampler-Id names sampler '${headers.samplerId}', but this is sampler '${sampler.id}'; use that sampler's base_url.`);
  }
  if (headers.runId !== undefined && headers.runId !== sampler.runId) {
    throw new ValidationError(
      sampler.runId
        ? `X-Run-Id names run '${headers.runId}', but this sampler is paired with run '${sampler.runId}'.`
        : `X-Run-Id names run '${headers.runId}', but this sampler is not paired with a run.`,
    );
  }
  if (headers.checkpointPath && lora && lora !== headers.checkpointPath) {
    throw new ValidationError(`lora ('${lora}') and X-Checkpoint-Path ('${headers.checkpointPath}') name different checkpoints; send the same path in both.`);
  }
  const path = headers.checkpointPath || lora;
  if (path) {
    const checkpoint = await resolve(actor, path);
    if (checkpoint.target !== 'sampler') {
      throw new ValidationError(`${path} is training state; sample from a sampler_weights checkpoint (save_weights_for_sampler).`);
    }
    if (checkpoint.baseModel !== sampler.baseModel) {
      throw new ValidationError(`${path} was trained on ${checkpoint.baseModel}, but this sampler serves ${sampler.baseModel}.`);
    }
    return { checkpointPath: path, runId: headers.runId ?? null };
  }
  // A paired client before its first publish samples the base model.
  if (headers.runId !== undefined) return { checkpointPath: null, runId: headers.runId };
  return { checkpointPath: sampler.modelPath, runId: null };
}

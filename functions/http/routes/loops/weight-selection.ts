/**
 * Which weights a `/sample` request asks for (loops-data-plane.md §10.2), from the routing headers
 * the SDK fixed when it built the sampling client. The sampling service resolves the choice: it
 * refuses a checkpoint the caller cannot read (404), training state or another base model's
 * adapter, and a run that is not the sampler's (422).
 */
import { ValidationError } from '#core/errors.ts';
import type { TrainingSampler } from '#core/training/model.ts';

export interface RoutingHeaders {
  checkpointPath?: string;
  runId?: string;
  samplerId?: string;
}

/** A pinned `sampler_weights` adapter, or null for the sampler's own model; the run a paired client samples for. */
export interface WeightChoice {
  checkpointPath: string | null;
  runId: string | null;
}

/**
 * `X-Checkpoint-Path` (repeated in the body's `lora`) pins an adapter; without one, a paired
 * client (`X-Run-Id`) samples the base model and a standalone one its sampler's own model. The
 * path names the sampler, so `X-Sampler-Id` may only repeat it.
 */
export function selectWeights(sampler: TrainingSampler, headers: RoutingHeaders, lora: string | null | undefined): WeightChoice {
  if (headers.samplerId !== undefined && headers.samplerId !== sampler.id) {
    throw new ValidationError(`X-Sampler-Id names sampler '${headers.samplerId}', but this is sampler '${sampler.id}'; use that sampler's base_url.`);
  }
  if (headers.checkpointPath && lora && lora !== headers.checkpointPath) {
    throw new ValidationError(`lora ('${lora}') and X-Checkpoint-Path ('${headers.checkpointPath}') name different checkpoints; send the same path in both.`);
  }
  return { checkpointPath: headers.checkpointPath || lora || null, runId: headers.runId ?? null };
}

import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { ValidationError } from '../errors.ts';
import { whatItHolds } from './checkpoint-paths.ts';
import type { TrainingCheckpoint } from './model.ts';

/** The parts of the training service this reads (training-service.ts, checkpoints.ts). */
export interface CheckpointSource {
  resolve(actor: Actor, path: string): Promise<TrainingCheckpoint>;
  readable(actor: Actor, path: string): Promise<TrainingCheckpoint | undefined>;
  listMine(actor: Actor): Promise<TrainingCheckpoint[]>;
  markSampled(checkpoint: TrainingCheckpoint): Promise<void>;
}
export type ModelSpecFor = (checkpoint: TrainingCheckpoint) => Promise<ModelSpec>;

/**
 * Training checkpoints as models a sampler serves: the `sampler_weights` adapters that runs save,
 * for token-level sampling (sampling.ts) and for chat under their `bt://loops:<run>/sampler_weights/<name>`
 * path (chat-service.ts). Serving one counts as sampling it, which keeps an ephemeral checkpoint
 * from the retention sweep a while longer.
 */
export class SamplerWeights {
  constructor(
    private readonly checkpoints: CheckpointSource,
    private readonly modelSpecFor: ModelSpecFor,
  ) {}

  /** The sampler checkpoint at `path`: NotFoundError when the caller cannot read one there, ValidationError for training state. */
  async resolve(actor: Actor, path: string): Promise<TrainingCheckpoint> {
    const checkpoint = await this.checkpoints.resolve(actor, path);
    if (checkpoint.target !== 'sampler') {
      throw new ValidationError(`${path} holds ${whatItHolds(checkpoint.target)}, which a sampler cannot load; sample a sampler_weights checkpoint (save_weights_for_sampler).`);
    }
    return checkpoint;
  }

  /** The model chat serves for a sampler checkpoint's path (the caller's own, or a public one), or undefined when the caller can read none there. */
  async findModel(actor: Actor, path: string): Promise<ModelSpec | undefined> {
    const checkpoint = await this.checkpoints.readable(actor, path);
    return checkpoint?.target === 'sampler' ? this.serve(checkpoint) : undefined;
  }

  /** The caller's sampler checkpoints, each a model chat can name. */
  async list(actor: Actor): Promise<TrainingCheckpoint[]> {
    return (await this.checkpoints.listMine(actor)).filter((checkpoint) => checkpoint.target === 'sampler');
  }

  /** What a sampler loads for the checkpoint, its adapter last; notes the use. */
  async serve(checkpoint: TrainingCheckpoint): Promise<ModelSpec> {
    const spec = await this.modelSpecFor(checkpoint);
    await this.checkpoints.markSampled(checkpoint);
    return spec;
  }
}

import type { Store } from '../../ports/store.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import type { BakeConfig } from '../bakes.ts';
import { InvalidInputError } from '../errors.ts';
import { keys } from '../keys.ts';
import type { ModelResolver } from '../models.ts';
import { currentJob } from './job-records.ts';
import { jobPaths, type JobOutputs } from './job-outputs.ts';

/** Sequential bakes nest; a chain deeper than this is refused rather than followed. */
const MAX_CHAIN = 32;

/**
 * Turns a model name into what the engine loads (DESIGN.md §5): the base model plus the chain
 * of baked adapters, root first — a checkpoint's own parents included.
 */
export class ModelChain {
  constructor(
    private readonly store: Store,
    private readonly models: ModelResolver,
    private readonly outputs: JobOutputs,
  ) {}

  async spec(actor: Actor, modelName: string, unknownMessage: string): Promise<ModelSpec> {
    const chain: ModelSpec['adapters'] = [];
    let name = modelName;
    // The first hop is checked against the caller; the rest were checked when each bake was made.
    let asWho = actor;
    for (let depth = 0; depth < MAX_CHAIN; depth++) {
      const ref = await this.models.resolve(asWho, name, unknownMessage);
      if (ref.kind === 'base') return { base_model: ref.name, adapters: chain.reverse() };
      const job = currentJob(ref.bakeItem, 'bake');
      if (job?.state !== 'complete') throw new InvalidInputError(unknownMessage);
      chain.push({ model_name: name, uri: this.outputs.uriFor(jobPaths(job.job_id).checkpoint(ref.step)) });
      const parent = (ref.bakeItem.config as BakeConfig).model?.parent_model_name;
      name = parent ?? (await this.repoBaseModel(ref.userId, ref.repo));
      asWho = { userId: ref.userId, isAdmin: true };
    }
    throw new InvalidInputError(`Model '${modelName}' has more than ${MAX_CHAIN} ancestors`);
  }

  private async repoBaseModel(userId: string, repo: string): Promise<string> {
    const item = await this.store.get(keys.repo(userId, repo));
    if (!item) throw new InvalidInputError(`Repository '${repo}' not found`);
    return item.base_model as string;
  }
}

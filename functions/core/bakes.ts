import type { Item, Key, Store } from '../ports/store.ts';
import { BakeCreate, type BakeConfigBase, type BakeDefinition, type JobStatus } from '../schemas/bread.ts';
import type { Actor } from './actor.ts';
import { batchCreate, type BatchResult } from './batch.ts';
import { ConflictError, InvalidInputError, NotFoundError } from './errors.ts';
import { createImmutable, deleteUnreferenced } from './immutable.ts';
import { deepMerge, dropNulls, type JsonObject } from './json.ts';
import { keys, resourceName } from './keys.ts';
import { currentJob } from './jobs/job-records.ts';
import { wireStatus } from './jobs/state-machine.ts';
import { formatCheckpointName, parseCheckpointName, type ModelResolver } from './models.ts';
import { assertValidName } from './names.ts';
import type { Repo, RepoService } from './repos.ts';
import { parseOrThrow } from './validation.ts';

/**
 * The `default` bake template as upstream resolves it (bread-api.md §6.3). The checkpoint's
 * `output_dir` is filled per bake.
 */
export const BAKE_DEFAULTS = {
  seed: 42,
  type: 'single_baker',
  micro_batch_size: 2,
  gradient_accumulation_steps: 1,
  epochs: 1,
  model: {
    type: 'bake',
    baked_adapter_config: { r: 32, lora_alpha: 16, target_modules: 'all-linear', lora_dropout: 0, bias: 'none' },
    disable_activation_checkpoint: false,
  },
  data: {
    type: 'single_baker',
    sources: [{ type: 'bake_jsonl', max_samples: -1 }],
    beta: 0,
    temperature: 1,
    max_length: 3000,
    train_eval_split: [1, 0],
    cache_dir: '.cache',
    dl_num_workers: 4,
  },
  optimizer: { learning_rate: 0.0001 },
  scheduler: { type: 'huggingface' },
  deepspeed: { zero_optimization: { stage: 3 } },
  checkpoint: [{ type: 'huggingface', save_end_of_training: true }],
  train_log_iter_interval: 1,
  eval_interval: 0,
} as const;

export type BakeConfig = BakeConfigBase & JsonObject;

export const checkpointDir = (bakeName: string) => `bakes/${bakeName}/ckpts`;

export class BakeService {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
    private readonly models: ModelResolver,
  ) {}

  async create(actor: Actor, repoName: string, name: string, definition: BakeDefinition): Promise<{ created: boolean; item: Item }> {
    assertValidName(name, 'bake');
    const repo = await this.repos.get(actor, repoName);
    const config = await this.resolve(actor, repo, name, definition);
    const result = await createImmutable(this.store, {
      // The template is provenance, not content: a repeat from another template that resolves to
      // the same config is identical (bread-api.md Q1) and keeps the first create's template.
      item: { ...keys.resource(actor.userId, repoName, 'bake', name), bake_name: name, config, template: definition.template },
      content: (item) => item.config,
      conflictMessage: `Bake '${name}' already exists with different configuration. Bakes are immutable and cannot be changed.`,
      references: this.references(actor, repo, config),
    });
    return result;
  }

  async createBatch(actor: Actor, repoName: string, entries: { bake_name: string }[]): Promise<BatchResult> {
    await this.repos.get(actor, repoName);
    return batchCreate(
      entries,
      (entry) => entry.bake_name,
      (entry) => {
        const { bake_name, ...definition } = parseOrThrow(BakeCreate, entry);
        return this.create(actor, repoName, bake_name, definition);
      },
    );
  }

  async getItem(actor: Actor, repoName: string, name: string): Promise<Item> {
    assertValidName(name, 'bake');
    await this.repos.get(actor, repoName);
    const item = await this.store.get(keys.resource(actor.userId, repoName, 'bake', name));
    if (!item) throw new NotFoundError(`Bake '${name}' not found`);
    return item;
  }

  async list(actor: Actor, repoName: string): Promise<string[]> {
    await this.repos.get(actor, repoName);
    return (await this.listItems(actor, repoName)).map((item) => item.bake_name as string);
  }

  async listItems(actor: Actor, repoName: string): Promise<Item[]> {
    const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'bake'));
    return items;
  }

  /** Refused while another bake builds on this one (bread-api.md Q5). Returns the deleted item. */
  async delete(actor: Actor, repoName: string, name: string): Promise<Item> {
    const item = await this.getItem(actor, repoName, name);
    const repo = await this.repos.get(actor, repoName);
    const deleted = await deleteUnreferenced(
      this.store,
      keys.resource(actor.userId, repoName, 'bake', name),
      this.references(actor, repo, item.config as BakeConfig).map((reference) => reference.key),
      async () => {
        const children = (await this.listItems(actor, repoName))
          .filter((other) => parentBakeOf(actor.userId, repoName, other.config as BakeConfig) === name)
          .map((other) => resourceName('bake', other.sk));
        return new ConflictError(
          children.length > 0
            ? `Bake '${name}' is the parent of bakes: ${children.join(', ')}`
            : `Bake '${name}' is the parent of bakes in other repositories`,
        );
      },
    );
    if (!deleted) throw new NotFoundError(`Bake '${name}' not found`);
    return item;
  }

  /** Template, deep-merge, server-filled fields, then checks (bread-api.md §6.4, §6.5, §7). */
  private async resolve(actor: Actor, repo: Repo, name: string, definition: BakeDefinition): Promise<BakeConfig> {
    const template = definition.template;
    const base = template === 'default' ? BAKE_DEFAULTS : await this.templateConfig(actor, repo, template);
    const config = dropNulls(deepMerge(base, definition.overrides ?? {})) as BakeConfig;

    if (config.datasets) config.datasets = config.datasets.map((dataset) => ({ ...dataset, weight: dataset.weight ?? 1.0 }));
    // A checkpoint directory inherited from a bake template is that bake's; each bake gets its own.
    const inherited = template === 'default' ? undefined : checkpointDir(template);
    config.checkpoint = (config.checkpoint ?? []).map((entry) => ({
      ...entry,
      output_dir: !entry.output_dir || entry.output_dir === inherited ? checkpointDir(name) : entry.output_dir,
    }));

    const parent = config.model?.parent_model_name;
    if (parent) await this.models.resolve(actor, parent, `Unknown parent model '${parent}'`);
    return config;
  }

  private async templateConfig(actor: Actor, repo: Repo, template: string): Promise<BakeConfig> {
    const item = await this.store.get(keys.resource(actor.userId, repo.repo_name, 'bake', template));
    if (!item) throw new InvalidInputError(`Template '${template}' not found`);
    return item.config as BakeConfig;
  }

  /** Dataset targets and a same-repo parent bake: each must exist while this bake does. */
  private references(actor: Actor, repo: Repo, config: BakeConfig): { key: Key; missing: () => Error }[] {
    const targets = (config.datasets ?? []).map((dataset) => ({
      key: keys.resource(actor.userId, repo.repo_name, 'target', dataset.target),
      missing: () => new InvalidInputError(`Invalid dataset reference: target '${dataset.target}' not found`),
    }));
    // A parent checkpoint in any repo must outlive this bake, which is baked on top of it.
    const parent = config.model?.parent_model_name ? parseCheckpointName(config.model.parent_model_name) : undefined;
    const parentRef = parent
      ? [
          {
            key: keys.resource(parent.userId, parent.repo, 'bake', parent.bake),
            missing: () => new InvalidInputError(`Unknown parent model '${config.model?.parent_model_name}'`),
          },
        ]
      : [];
    return [...targets, ...parentRef];
  }
}

/** The parent bake's name when `model.parent_model_name` is a checkpoint of this same repo. */
export function parentBakeOf(userId: string, repoName: string, config: BakeConfig): string | undefined {
  const parts = config.model?.parent_model_name?.split('/');
  if (parts?.length !== 4 || parts[0] !== userId || parts[1] !== repoName) return undefined;
  return parts[2];
}

/** The template a bake or target was made from; undefined for items stored before it was recorded. */
export function templateOf(item: Item): string | undefined {
  return typeof item.template === 'string' ? item.template : undefined;
}

/** A bake's job status as the lineage tree shows it. */
export function bakeStatus(item: Item): JobStatus {
  return wireStatus(currentJob(item, 'bake')?.state);
}

/** Checkpoint model names of a bake, newest first. */
export function bakeModelNames(userId: string, repoName: string, bakeName: string, steps: number[]): string[] {
  return [...steps].sort((a, b) => b - a).map((step) => formatCheckpointName({ userId, repo: repoName, bake: bakeName, step }));
}

import type { Item, Store } from '../ports/store.ts';
import {
  TargetCreate,
  type Generator,
  type TargetConfig,
  type TargetConfigBase,
  type TargetDefinition,
} from '../schemas/bread.ts';
import type { Actor } from './actor.ts';
import { templateOf } from './bakes.ts';
import { batchCreate, type BatchResult } from './batch.ts';
import type { DatasetService } from './datasets.ts';
import { ConflictError, InvalidInputError, NotFoundError, ValidationError } from './errors.ts';
import { normaliseGenerator } from './generators.ts';
import { createImmutable, deleteUnreferenced } from './immutable.ts';
import { deepMerge, dropNulls } from './json.ts';
import { keys, resourceName } from './keys.ts';
import type { ModelResolver } from './models.ts';
import { assertValidName } from './names.ts';
import type { Repo, RepoService } from './repos.ts';
import { parseOrThrow } from './validation.ts';

/** The `default` target template (bread-api.md §5.2); `model_name` comes from the repo. */
export const TARGET_DEFAULTS = {
  generators: [],
  num_traj_per_stimulus: 1,
  max_concurrency: 10,
  temperature: 1.0,
  extra_kwargs: {},
} as const;

export interface Target {
  target_name: string;
  config: TargetConfig;
  /** The template it was made from; unknown (absent) for targets stored before it was recorded. */
  template?: string;
}

const ALIASES = [
  ['teacher_prompt', 'u'],
  ['student_prompt', 'v'],
] as const;

export class TargetService {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
    private readonly models: ModelResolver,
    private readonly datasets: DatasetService,
  ) {}

  async create(actor: Actor, repoName: string, name: string, definition: TargetDefinition): Promise<{ created: boolean; target: Target }> {
    assertValidName(name, 'target');
    const repo = await this.repos.get(actor, repoName);
    const config = await this.resolve(actor, repo, definition);
    const datasets = this.datasets.references(actor, config.generators);
    const result = await createImmutable(this.store, {
      // The template is provenance, not content: a repeat from another template that resolves to
      // the same config is identical (bread-api.md Q1) and keeps the first create's template.
      item: { ...keys.resource(actor.userId, repoName, 'target', name), target_name: name, config, template: definition.template },
      content: (item) => item.config,
      conflictMessage: `Target '${name}' already exists with different configuration. Targets are immutable and cannot be changed.`,
      references: [
        ...[config.teacher_prompt, config.student_prompt].map((prompt) => ({
          key: keys.resource(actor.userId, repoName, 'prompt', prompt),
          missing: () => new InvalidInputError(`Prompt '${prompt}' not found`),
        })),
        ...datasets,
      ],
    });
    return { created: result.created, target: toTarget(result.item) };
  }

  async createBatch(actor: Actor, repoName: string, entries: { target_name: string }[]): Promise<BatchResult> {
    await this.repos.get(actor, repoName);
    return batchCreate(
      entries,
      (entry) => entry.target_name,
      (entry) => {
        const { target_name, ...definition } = parseOrThrow(TargetCreate, entry);
        return this.create(actor, repoName, target_name, definition);
      },
    );
  }

  async get(actor: Actor, repoName: string, name: string): Promise<Target> {
    return toTarget(await this.getItem(actor, repoName, name));
  }

  async getItem(actor: Actor, repoName: string, name: string): Promise<Item> {
    assertValidName(name, 'target');
    await this.repos.get(actor, repoName);
    const item = await this.store.get(keys.resource(actor.userId, repoName, 'target', name));
    if (!item) throw new NotFoundError(`Target '${name}' not found`);
    return item;
  }

  async list(actor: Actor, repoName: string): Promise<string[]> {
    await this.repos.get(actor, repoName);
    const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'target'));
    return items.map((item) => resourceName('target', item.sk));
  }

  /** Refused while a bake uses the target (bread-api.md Q5). Returns the deleted item. */
  async delete(actor: Actor, repoName: string, name: string): Promise<Item> {
    const item = await this.getItem(actor, repoName, name);
    const target = toTarget(item);
    const prompts = [target.config.teacher_prompt, target.config.student_prompt];
    const deleted = await deleteUnreferenced(
      this.store,
      keys.resource(actor.userId, repoName, 'target', name),
      [
        ...prompts.map((prompt) => keys.resource(actor.userId, repoName, 'prompt', prompt)),
        ...this.datasets.referencedKeys(actor, target.config),
      ],
      async () => {
        const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'bake'));
        const users = items
          .filter((item) => ((item.config as { datasets?: { target: string }[] }).datasets ?? []).some((d) => d.target === name))
          .map((item) => resourceName('bake', item.sk));
        return new ConflictError(`Target '${name}' is used by bakes: ${users.join(', ')}`);
      },
    );
    if (!deleted) throw new NotFoundError(`Target '${name}' not found`);
    return item;
  }

  /** Template, aliases, defaults, then checks (bread-api.md §5.4, §7). */
  private async resolve(actor: Actor, repo: Repo, definition: TargetDefinition): Promise<TargetConfig> {
    const overrides = withoutAliases(definition.overrides ?? {});
    const base = definition.template === 'default' ? TARGET_DEFAULTS : await this.templateConfig(actor, repo, definition.template);
    const merged = dropNulls(deepMerge(base, overrides)) as Partial<TargetConfig>;
    merged.model_name ??= repo.base_model;

    const missing = ALIASES.map(([field]) => field).filter((field) => !merged[field]);
    if (missing.length > 0) {
      throw new InvalidInputError(`Missing required stim fields: [${missing.map((field) => `'${field}'`).join(', ')}]`);
    }
    merged.generators = (merged.generators ?? []).map((generator: Generator, index: number) => normaliseGenerator(generator, index));
    await this.models.resolve(actor, merged.model_name, `Unknown model '${merged.model_name}'`);
    return merged as TargetConfig;
  }

  private async templateConfig(actor: Actor, repo: Repo, template: string): Promise<TargetConfig> {
    const item = await this.store.get(keys.resource(actor.userId, repo.repo_name, 'target', template));
    if (!item) throw new InvalidInputError(`Template '${template}' not found`);
    return item.config as TargetConfig;
  }
}

/** Maps the deprecated `u`/`v` onto their new names (bread-api.md §5.3). */
function withoutAliases(overrides: TargetConfigBase): TargetConfigBase {
  const out: TargetConfigBase = { ...overrides };
  for (const [field, alias] of ALIASES) {
    const value = out[field];
    const aliased = out[alias];
    delete out[alias];
    if (aliased == null) continue;
    if (value != null && value !== aliased) {
      throw new ValidationError(`Conflicting values for '${field}' and deprecated alias '${alias}'`);
    }
    out[field] = aliased;
  }
  return out;
}

function toTarget(item: Item): Target {
  const template = templateOf(item);
  return { target_name: item.target_name as string, config: item.config as TargetConfig, ...(template ? { template } : {}) };
}

import { ConditionFailedError, type Store } from '../ports/store.ts';
import type { Clock } from '../ports/clock.ts';
import type { Actor } from './actor.ts';
import { ConflictError, InvalidInputError, NotFoundError } from './errors.ts';
import { keys } from './keys.ts';
import type { ModelResolver } from './models.ts';
import { assertValidName } from './names.ts';

export interface Repo {
  repo_name: string;
  base_model: string;
}

export interface RepoPage {
  repos: Repo[];
  offset: number;
  limit: number;
  has_more: boolean;
  total: number;
}

export class RepoService {
  constructor(
    private readonly store: Store,
    private readonly models: ModelResolver,
    private readonly clock: Clock,
  ) {}

  /**
   * Creates a repo, or returns the existing one. An omitted base model means "don't care" and
   * never conflicts; an explicit different one is a 409 (base models are immutable).
   */
  async create(actor: Actor, input: { repo_name: string; base_model?: string | null }): Promise<{ created: boolean; repo: Repo }> {
    assertValidName(input.repo_name, 'repo');
    const requested = input.base_model ?? undefined;
    const existing = await this.find(actor, input.repo_name);
    if (existing) return { created: false, repo: this.checkCompatible(existing, requested) };

    // bread-api.md §3 names Qwen/Qwen3-32B; the deployment may choose one it can run (ModelCatalog).
    const baseModel = requested ?? this.models.defaultBaseModel();
    if (!this.models.isBaseModel(baseModel)) throw new InvalidInputError(`Unsupported base_model '${baseModel}'`);
    const repo: Repo = { repo_name: input.repo_name, base_model: baseModel };
    try {
      await this.store.put(
        { ...keys.repo(actor.userId, repo.repo_name), ...repo, created_at: this.clock.now().toISOString() },
        { exists: false },
      );
      return { created: true, repo };
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      // A concurrent create won; answer as a repeat of it.
      return { created: false, repo: this.checkCompatible(await this.get(actor, repo.repo_name), requested) };
    }
  }

  async get(actor: Actor, repoName: string): Promise<Repo> {
    const repo = await this.find(actor, repoName);
    if (!repo) throw new NotFoundError(`Repository '${repoName}' not found`);
    return repo;
  }

  async listNames(actor: Actor): Promise<string[]> {
    return (await this.listAll(actor)).map((repo) => repo.repo_name);
  }

  /** Without `limit`, every remaining repo; `limit` echoes the count returned (at least 1). */
  async listPage(actor: Actor, offset: number, limit: number | undefined): Promise<RepoPage> {
    const all = await this.listAll(actor);
    const repos = all.slice(offset, limit === undefined ? undefined : offset + limit);
    return {
      repos,
      offset,
      limit: limit ?? Math.max(1, repos.length),
      has_more: offset + repos.length < all.length,
      total: all.length,
    };
  }

  private async listAll(actor: Actor): Promise<Repo[]> {
    const { items } = await this.store.query(keys.repoPartition(actor.userId));
    return items.map((item) => ({ repo_name: item.repo_name as string, base_model: item.base_model as string }));
  }

  private async find(actor: Actor, repoName: string): Promise<Repo | undefined> {
    assertValidName(repoName, 'repo');
    const item = await this.store.get(keys.repo(actor.userId, repoName));
    return item && { repo_name: item.repo_name as string, base_model: item.base_model as string };
  }

  private checkCompatible(existing: Repo, requested: string | undefined): Repo {
    if (requested !== undefined && requested !== existing.base_model) {
      throw new ConflictError(
        `Repository '${existing.repo_name}' already exists with base_model '${existing.base_model}'. ` +
          'Repository base_model is immutable and cannot be changed.',
      );
    }
    return existing;
  }
}

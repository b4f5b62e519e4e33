import type { Item, Store } from '../ports/store.ts';
import type { Actor } from './actor.ts';
import { InvalidInputError, NotFoundError } from './errors.ts';
import { keys } from './keys.ts';

/** The toy instruct model the project trains itself: small enough for any machine, no hub needed. */
export const TOY_MODEL = 'bakehouse/toy-instruct';

/** bread-api.md §3: what a repo created without a base model gets, unless the deployment says otherwise. */
export const SPEC_DEFAULT_BASE_MODEL = 'Qwen/Qwen3-32B';

/** Base models served unless the deployment names its own (`BAKEHOUSE_BASE_MODELS`). */
export const DEFAULT_BASE_MODELS: readonly string[] = [
  TOY_MODEL,
  'Qwen/Qwen3-0.6B',
  'Qwen/Qwen3-1.7B',
  'Qwen/Qwen3-4B',
  'Qwen/Qwen3-8B',
  'Qwen/Qwen3-14B',
  SPEC_DEFAULT_BASE_MODEL,
];

/** Base models this deployment serves; repos and targets may only name these or checkpoints. */
export interface ModelCatalog {
  readonly baseModels: readonly string[];
  /** Given to a repo created without a base model; one of `baseModels` (the runtime's config checks). */
  readonly defaultBaseModel: string;
}

export interface CheckpointName {
  userId: string;
  repo: string;
  bake: string;
  step: number;
}

export type ModelRef = { kind: 'base'; name: string } | ({ kind: 'checkpoint'; name: string; bakeItem: Item } & CheckpointName);

/** Parses `user/repo/bake/checkpoint` (bread-api.md §12.1); undefined for anything else. */
export function parseCheckpointName(name: string): CheckpointName | undefined {
  const parts = name.split('/');
  if (parts.length !== 4) return undefined;
  const [userId, repo, bake, step] = parts as [string, string, string, string];
  if (!userId || !repo || !bake || !/^\d+$/.test(step)) return undefined;
  return { userId, repo, bake, step: Number(step) };
}

export function formatCheckpointName(name: CheckpointName): string {
  return `${name.userId}/${name.repo}/${name.bake}/${name.step}`;
}

/** The checkpoints a bake item records, newest first. */
export function checkpointsOf(bake: Record<string, unknown>): number[] {
  const steps = Array.isArray(bake.checkpoints) ? (bake.checkpoints as number[]) : [];
  return [...steps].sort((a, b) => b - a);
}

export class ModelResolver {
  constructor(
    private readonly store: Store,
    private readonly catalog: ModelCatalog,
  ) {}

  /**
   * Resolves a model name the actor may use: a catalog base model, or a checkpoint of a bake
   * that exists and saved that step (with the bake item as read). Another user's checkpoint only
   * for an admin key.
   */
  async resolve(actor: Actor, name: string, unknownMessage: string): Promise<ModelRef> {
    if (this.catalog.baseModels.includes(name)) return { kind: 'base', name };
    const checkpoint = parseCheckpointName(name);
    if (!checkpoint) throw new InvalidInputError(unknownMessage);
    if (checkpoint.userId !== actor.userId && !actor.isAdmin) throw new InvalidInputError(unknownMessage);
    const bake = await this.store.get(keys.resource(checkpoint.userId, checkpoint.repo, 'bake', checkpoint.bake));
    if (!bake || !checkpointsOf(bake).includes(checkpoint.step)) throw new InvalidInputError(unknownMessage);
    return { kind: 'checkpoint', name, bakeItem: bake, ...checkpoint };
  }

  /**
   * Finds the bake a checkpoint name points at, if the actor may read it (bread-api.md §12.2);
   * 404 for a bake that is missing or belongs to another user, so names of others' bakes are not
   * revealed. Whether the bake saved that step is the caller's to check: it can say why not.
   */
  async locateBake(actor: Actor, name: string): Promise<{ checkpoint: CheckpointName; bakeItem: Item }> {
    const checkpoint = parseCheckpointName(name);
    const visible = checkpoint && (checkpoint.userId === actor.userId || actor.isAdmin);
    const bakeItem = visible ? await this.store.get(keys.resource(checkpoint.userId, checkpoint.repo, 'bake', checkpoint.bake)) : undefined;
    if (!checkpoint || !bakeItem) throw new NotFoundError('Checkpoint not found');
    return { checkpoint, bakeItem };
  }

  baseModels(): readonly string[] {
    return this.catalog.baseModels;
  }

  defaultBaseModel(): string {
    return this.catalog.defaultBaseModel;
  }

  isBaseModel(name: string): boolean {
    return this.catalog.baseModels.includes(name);
  }
}

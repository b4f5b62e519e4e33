import type { Blobs } from '../../ports/blobs.ts';
import type { Clock } from '../../ports/clock.ts';
import { ignoreConditionFailed, putIf, TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { TrainerResult } from '../../schemas/trainer.ts';
import type { Actor } from '../actor.ts';
import { InvalidInputError, NotFoundError, ValidationError } from '../errors.ts';
import { keys } from '../keys.ts';
import { ensureArchive } from './checkpoint-archive.ts';
import { checkpointPath, checkpointPrefix, isEphemeralName, parseCheckpointPath, whatItHolds, type CheckpointAddress } from './checkpoint-paths.ts';
import { createWithNewId } from './ids.ts';
import type { CheckpointTarget, TrainingCheckpoint, TrainingRun, TrainOrSampleTarget } from './model.ts';
import { isOwnRun, runKey, toRun } from './run-records.ts';

export interface CheckpointSettings {
  /** Ephemeral sampler checkpoints kept per run whatever their age (loops-data-plane.md §11). */
  ephemeralKeep: number;
  /** An older ephemeral checkpoint nobody sampled from for this long is deleted with its files. */
  ephemeralIdleS: number;
  /** How long a presigned file URL works. */
  fileUrlExpiresS: number;
}

/** Exactly one filter, as the list route demands. */
export type CheckpointFilter = { runId: string } | { baseModel: string } | { path: string };

export interface CheckpointFile {
  url: string;
  relative_file_name: string;
  size_bytes: number;
  last_modified: string;
}

export interface CheckpointFilesPage {
  files: CheckpointFile[];
  nextPageToken: number | null;
  totalCount: number;
}

/** What a save operation wrote, as the trainer reported it, and how it was asked for. */
export interface SavedCheckpoint {
  address: CheckpointAddress;
  result: TrainerResult<'save'>;
  publish: boolean;
  ttlSeconds: number | null;
}

/** A run as a user other than its owner sees it: the run and its public checkpoints, oldest first. */
export interface SharedRun {
  run: TrainingRun;
  checkpoints: TrainingCheckpoint[];
}

/** A time to live is a positive whole number of seconds (fronts may narrow the range). */
export function assertTtlSeconds(ttlSeconds: number | null): void {
  if (ttlSeconds !== null && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)) {
    throw new ValidationError(`ttl_seconds must be a positive whole number of seconds; got ${ttlSeconds}.`);
  }
}

const NOT_A_PATH = (path: string) =>
  `'${path}' is not a checkpoint path; expected bt://loops:<run_id>/weights/<name> or bt://loops:<run_id>/sampler_weights/<name> ` +
  '(or tinker://<model_id>/weights/<name>, tinker://<model_id>/sampler_weights/<name>).';

/**
 * Checkpoint records (loops-data-plane.md §12): one per run, target and name, written when a
 * save's result arrives and overwritten by a later save of the same name (keeping its id). The
 * files live in Blobs under the checkpoint's prefix and are downloaded through presigned URLs.
 * Ephemeral checkpoints (published per sampling client) and those given a time to live are
 * deleted by `sweep`. Only its owner manages a checkpoint; a public one's weights can be read by
 * every user (sampled, trained from, described), which `readable` and `resolve` allow.
 */
export class TrainingCheckpoints {
  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly clock: Clock,
    private readonly settings: CheckpointSettings,
  ) {}

  /**
   * The caller's checkpoints by one filter, oldest first for a run. External weights are listed
   * only with `external: true`: they are a Tinker export the Loops API has no target for (its SDK
   * refuses a checkpoint whose target it does not know).
   */
  async list(actor: Actor, filter: CheckpointFilter): Promise<TrainingCheckpoint<TrainOrSampleTarget>[]>;
  async list(actor: Actor, filter: CheckpointFilter, options: { external: true }): Promise<TrainingCheckpoint[]>;
  async list(actor: Actor, filter: CheckpointFilter, options: { external: boolean } = { external: false }): Promise<TrainingCheckpoint[]> {
    return withExternal(await this.listEvery(actor, filter), options.external);
  }

  private async listEvery(actor: Actor, filter: CheckpointFilter): Promise<TrainingCheckpoint[]> {
    if ('path' in filter) {
      if (!parseCheckpointPath(filter.path)) throw new InvalidInputError(NOT_A_PATH(filter.path));
      const found = await this.find(actor, filter.path);
      return found ? [found] : [];
    }
    if ('runId' in filter) {
      if (!isOwnRun(actor, await this.store.get(runKey(filter.runId)))) throw new NotFoundError(`Training run '${filter.runId}' not found for this API key; check the run id, or list your runs to find it.`);
      const { items } = await this.store.query(keys.trainingCheckpoints(filter.runId));
      return this.live(items).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    }
    return (await this.listMine(actor, { external: true })).filter((checkpoint) => checkpoint.baseModel === filter.baseModel);
  }

  /** Every checkpoint the caller owns (chat lists the sampler ones as models); external weights only with `external: true`, as in `list`. */
  async listMine(actor: Actor): Promise<TrainingCheckpoint<TrainOrSampleTarget>[]>;
  async listMine(actor: Actor, options: { external: true }): Promise<TrainingCheckpoint[]>;
  async listMine(actor: Actor, options: { external: boolean } = { external: false }): Promise<TrainingCheckpoint[]> {
    const { items } = await this.store.query({ pk: keys.trainingCheckpointIndex(actor.userId).gsi1pk, index: 'gsi1' });
    return withExternal(this.live(items), options.external);
  }

  async get(actor: Actor, checkpointId: string): Promise<TrainingCheckpoint> {
    const pointer = await this.store.get(keys.trainingCheckpointId(checkpointId));
    const item = pointer && (await this.store.get(keys.trainingCheckpoint(pointer.run_id as string, pointer.target as string, pointer.name as string)));
    const checkpoint = item && this.live([item])[0];
    if (!checkpoint || checkpoint.userId !== actor.userId || checkpoint.id !== checkpointId) throw new NotFoundError(`Checkpoint '${checkpointId}' not found for this API key; check its id, or list your checkpoints to find it.`);
    return checkpoint;
  }

  /** The checkpoint a path names, if the caller can read its weights (their own or a public one); InvalidInputError for what is not a path. */
  async resolve(actor: Actor, path: string): Promise<TrainingCheckpoint> {
    if (!parseCheckpointPath(path)) throw new InvalidInputError(NOT_A_PATH(path));
    const checkpoint = await this.readable(actor, path);
    if (!checkpoint) throw new NotFoundError(`Checkpoint ${path} not found for this API key; check the path, or list your checkpoints to find it.`);
    return checkpoint;
  }

  /** The caller's own checkpoint at the path: the one they may manage (delete, publish, expire, download). */
  async find(actor: Actor, path: string): Promise<TrainingCheckpoint | undefined> {
    const checkpoint = await this.at(path);
    return checkpoint?.userId === actor.userId ? checkpoint : undefined;
  }

  /** The checkpoint at the path if the caller may read its weights: their own, or a public one. */
  async readable(actor: Actor, path: string): Promise<TrainingCheckpoint | undefined> {
    const checkpoint = await this.at(path);
    return checkpoint && (checkpoint.userId === actor.userId || checkpoint.public) ? checkpoint : undefined;
  }

  /**
   * Makes the caller's checkpoint public, or private again. Asking for what already holds changes
   * nothing and succeeds: the stock Tinker SDK retries a 409 for five minutes before raising it.
   */
  async setPublic(actor: Actor, checkpointId: string, isPublic: boolean): Promise<TrainingCheckpoint> {
    const checkpoint = await this.get(actor, checkpointId);
    if (checkpoint.public === isPublic) return checkpoint;
    const marker = keys.publicTrainingCheckpoint(checkpoint.runId, checkpoint.target, checkpoint.name);
    try {
      await this.store.transact([
        { kind: 'update', key: keys.trainingCheckpoint(checkpoint.runId, checkpoint.target, checkpoint.name), update: { set: { public: isPublic }, condition: { equals: { id: checkpoint.id } }, upsert: false } },
        isPublic ? { kind: 'put', item: { ...marker, run_id: checkpoint.runId } } : { kind: 'delete', key: marker },
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError) throw this.deletedMeanwhile();
      throw error;
    }
    return { ...checkpoint, public: isPublic };
  }

  /** Sets the caller's checkpoint to expire `ttlSeconds` from now, or never (null); `sweep` deletes it once expired. */
  async setTimeToLive(actor: Actor, checkpointId: string, ttlSeconds: number | null): Promise<TrainingCheckpoint> {
    assertTtlSeconds(ttlSeconds);
    const checkpoint = await this.get(actor, checkpointId);
    const expiresAt = ttlSeconds === null ? null : new Date(this.clock.now().getTime() + ttlSeconds * 1000).toISOString();
    if (expiresAt) await this.watch(checkpoint.runId);
    await this.store
      .update(keys.trainingCheckpoint(checkpoint.runId, checkpoint.target, checkpoint.name), { set: { expires_at: expiresAt }, condition: { equals: { id: checkpoint.id } }, upsert: false })
      .catch((error: unknown) => {
        ignoreConditionFailed(error);
        throw this.deletedMeanwhile();
      });
    if (expiresAt) await this.watch(checkpoint.runId);
    return { ...checkpoint, expiresAt };
  }

  /** Other users' runs that hold public checkpoints, each with those checkpoints. */
  async sharedRuns(actor: Actor): Promise<SharedRun[]> {
    const { items } = await this.store.query(keys.publicTrainingCheckpoints);
    const runIds = [...new Set(items.map((marker) => marker.run_id as string))];
    const shared = await Promise.all(runIds.map((runId) => this.sharedRun(runId)));
    return shared.filter((view): view is SharedRun => view !== undefined && view.run.userId !== actor.userId);
  }

  /** The run (by id, or by the front's alias for it) as any user sees it; undefined when it holds no public checkpoint. */
  async sharedRun(runIdOrAlias: string): Promise<SharedRun | undefined> {
    const runId = await this.runIdOf(runIdOrAlias);
    const run = await this.store.get(runKey(runId));
    if (!run) return undefined;
    const { items } = await this.store.query(keys.trainingCheckpoints(runId));
    const checkpoints = this.live(items)
      .filter((checkpoint) => checkpoint.public)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    return checkpoints.length > 0 ? { run: toRun(run), checkpoints } : undefined;
  }

  /**
   * Where a path points: a `bt://` path names its run directly; a `tinker://` one by the run's
   * alias (its Tinker model id) or, for a run without one, its id. Undefined for what is not a path.
   */
  private async address(path: string): Promise<CheckpointAddress | undefined> {
    const reference = parseCheckpointPath(path);
    if (!reference) return undefined;
    const { run, target, name } = reference;
    return { runId: reference.scheme === 'bt' ? run : await this.runIdOf(run), target, name };
  }

  /** A run's id from its alias (its Tinker model id) or its id. */
  private async runIdOf(runIdOrAlias: string): Promise<string> {
    const alias = await this.store.get(keys.trainingRunAlias(runIdOrAlias));
    return (alias?.run_id as string | undefined) ?? runIdOrAlias;
  }

  /** The live checkpoint at the path, whoever owns it. */
  private async at(path: string): Promise<TrainingCheckpoint | undefined> {
    const address = await this.address(path);
    const item = address && (await this.store.get(keys.trainingCheckpoint(address.runId, address.target, address.name)));
    return item && this.live([item])[0];
  }

  /** A page of the checkpoint's files, each with a URL that fetches it without any API key. */
  async files(actor: Actor, checkpointId: string, page: { pageSize: number; pageToken: number }): Promise<CheckpointFilesPage> {
    const checkpoint = await this.get(actor, checkpointId);
    const all = [...checkpoint.files].sort((a, b) => a.name.localeCompare(b.name));
    const files = await this.signed(checkpoint, all.slice(page.pageToken, page.pageToken + page.pageSize));
    const next = page.pageToken + page.pageSize;
    return { files, nextPageToken: next < all.length ? next : null, totalCount: all.length };
  }

  /** Every file of the checkpoint with a URL that fetches it without any API key, and when those URLs stop working (ISO-8601). */
  async fileUrls(actor: Actor, checkpointId: string): Promise<{ files: CheckpointFile[]; expiresAt: string }> {
    const checkpoint = await this.get(actor, checkpointId);
    const expiresAt = new Date(this.clock.now().getTime() + this.settings.fileUrlExpiresS * 1000).toISOString();
    return { files: await this.signed(checkpoint, checkpoint.files), expiresAt };
  }

  private signed(checkpoint: TrainingCheckpoint, files: TrainingCheckpoint['files']): Promise<CheckpointFile[]> {
    const prefix = checkpointPrefix(checkpoint);
    return Promise.all(
      files.map(async (file) => ({
        url: await this.blobs.presignGet(`${prefix}${file.name}`, this.settings.fileUrlExpiresS),
        relative_file_name: file.name,
        size_bytes: file.size_bytes,
        last_modified: checkpoint.createdAt,
      })),
    );
  }

  /** A URL that fetches the checkpoint's files as one gzipped tarball without any API key; the tarball is built once per save. */
  async archiveUrl(actor: Actor, checkpointId: string): Promise<string> {
    const checkpoint = await this.get(actor, checkpointId);
    return this.blobs.presignGet(await ensureArchive(this.blobs, checkpoint), this.settings.fileUrlExpiresS);
  }

  /** Deletes the caller's checkpoint with its files; NotFoundError when there is none to delete. */
  async remove(actor: Actor, checkpointId: string): Promise<void> {
    const checkpoint = await this.get(actor, checkpointId);
    const item = await this.store.get(keys.trainingCheckpoint(checkpoint.runId, checkpoint.target, checkpoint.name));
    if (!item || !(await this.delete(item))) throw this.deletedMeanwhile();
  }

  /**
   * Whether a sampler can use the path: a `sampler_weights` checkpoint the caller can read, and
   * when `runId` is given, one trained on that run's base model. InvalidInputError says why not.
   */
  async validate(actor: Actor, path: string, runId?: string): Promise<TrainingCheckpoint> {
    const address = await this.address(path);
    if (!address) throw new InvalidInputError(NOT_A_PATH(path));
    if (address.target !== 'sampler') {
      throw new InvalidInputError(`${path} holds ${whatItHolds(address.target)}, which a sampler cannot load; use a bt://loops:<run_id>/sampler_weights/<name> checkpoint (save_weights_for_sampler).`);
    }
    const checkpoint = await this.readable(actor, path);
    if (!checkpoint) throw new InvalidInputError(`Checkpoint ${path} does not exist or you cannot read it; list your checkpoints to find its path.`);
    if (runId !== undefined) {
      const run = await this.store.get(runKey(runId));
      if (!isOwnRun(actor, run)) throw new InvalidInputError(`Run ${runId} does not exist or is not yours; check the run id, or list your runs to find it.`);
      if (checkpoint.baseModel !== run.base_model) {
        throw new InvalidInputError(
          `Checkpoint ${path} was trained on ${checkpoint.baseModel}, but run ${runId} trains ${run.base_model as string}; sample it with a sampler of ${checkpoint.baseModel}.`,
        );
      }
    }
    return checkpoint;
  }

  /** Notes that a sampler served the checkpoint, which holds off the retention sweep for an ephemeral one. */
  async markSampled(checkpoint: TrainingCheckpoint): Promise<void> {
    if (!checkpoint.ephemeral) return;
    await this.store
      .update(keys.trainingCheckpoint(checkpoint.runId, checkpoint.target, checkpoint.name), {
        set: { last_sampled_at: this.clock.now().getTime() },
        condition: { equals: { id: checkpoint.id } },
        upsert: false,
      })
      .catch(ignoreConditionFailed);
  }

  /**
   * Writes the record of a save (create, or overwrite keeping the id), before the operation is
   * answered, so the checkpoint can be listed and downloaded as soon as a client sees its path.
   */
  async record(run: Item, saved: SavedCheckpoint): Promise<TrainingCheckpoint> {
    const { address, result } = saved;
    const key = keys.trainingCheckpoint(address.runId, address.target, address.name);
    const existing = await this.store.get(key);
    const existingId = existing?.id as string | undefined;
    const id =
      existingId ??
      (await createWithNewId((candidate) =>
        putIf(this.store, { ...keys.trainingCheckpointId(candidate), run_id: address.runId, target: address.target, name: address.name }, { exists: false }).then(
          (created) => (created ? candidate : undefined),
        ),
      ));
    const now = this.clock.now();
    const ephemeral = address.target === 'sampler' && saved.publish && isEphemeralName(address.name);
    const expiresAt = saved.ttlSeconds === null ? null : new Date(now.getTime() + saved.ttlSeconds * 1000).toISOString();
    const checkpoint: TrainingCheckpoint = {
      id,
      runId: address.runId,
      userId: run.user_id as string,
      name: address.name,
      target: address.target,
      path: checkpointPath(address),
      baseModel: run.base_model as string,
      loraConfig: result.lora_config,
      step: result.step,
      files: result.files,
      sizeBytes: result.files.reduce((sum, file) => sum + file.size_bytes, 0),
      ephemeral,
      expiresAt,
      // A save under the name of a public checkpoint stays public, as its marker does.
      public: existing?.public === true,
      createdAt: now.toISOString(),
    };
    const swept = ephemeral || expiresAt !== null;
    if (swept) await this.watch(address.runId);
    await this.store.put({
      ...key,
      ...keys.trainingCheckpointIndex(checkpoint.userId),
      gsi1sk: `${checkpoint.createdAt}#${id}`,
      ...toItem(checkpoint),
      policy_version: result.policy_version,
    });
    if (swept) await this.watch(address.runId);
    return checkpoint;
  }

  /**
   * Marks the run for `sweep`, before and again after a write that gives it something to sweep: a
   * crash after the first leaves it marked, and the second's fresh token stops a sweep that read
   * the run before that write from unmarking it.
   */
  private async watch(runId: string): Promise<void> {
    await this.store.put({ ...keys.trainingRetention(runId), token: crypto.randomUUID() });
  }

  /**
   * Deletes, with their files, checkpoints past their time to live, and ephemeral ones beyond
   * the newest `ephemeralKeep` of their run that nobody sampled from for `ephemeralIdleS`.
   */
  async sweep(): Promise<number> {
    const now = this.clock.now().getTime();
    let deleted = 0;
    for (const marker of (await this.store.query(keys.trainingRetentions)).items) {
      const runId = marker.sk;
      const { items } = await this.store.query(keys.trainingCheckpoints(runId));
      const expired = items.filter((item) => typeof item.expires_at === 'string' && Date.parse(item.expires_at) <= now);
      const ephemeral = items
        .filter((item) => item.ephemeral === true && !expired.includes(item))
        .sort((a, b) => (b.created_at as string).localeCompare(a.created_at as string));
      const idleMs = this.settings.ephemeralIdleS * 1000;
      const stale = ephemeral.slice(this.settings.ephemeralKeep).filter((item) => Math.max(Date.parse(item.created_at as string), (item.last_sampled_at as number | undefined) ?? 0) + idleMs <= now);
      for (const item of [...expired, ...stale]) if (await this.delete(item)) deleted += 1;
      const watched = items.filter((item) => !expired.includes(item) && !stale.includes(item) && typeof item.expires_at === 'string');
      if (watched.length === 0 && ephemeral.length - stale.length <= this.settings.ephemeralKeep) {
        // Unless a save or a new time to live marked the run again since it was read (watch).
        const unchanged = marker.token === undefined ? { absent: ['token'] } : { equals: { token: marker.token as string } };
        await this.store.delete(marker, unchanged).catch((error: unknown) => ignoreConditionFailed(error));
      }
    }
    return deleted;
  }

  /** The record first (unless a save wrote it again meanwhile), then its id and its files. */
  private async delete(item: Item): Promise<boolean> {
    const removed = await this.store.delete(item, { equals: { created_at: item.created_at as string } }).catch((error: unknown) => ignoreConditionFailed(error));
    if (!removed) return false;
    await this.store.delete(keys.trainingCheckpointId(item.id as string));
    await this.store.delete(keys.publicTrainingCheckpoint(item.run_id as string, item.target as string, item.name as string));
    await this.blobs.deletePrefix(checkpointPrefix({ runId: item.run_id as string, target: item.target as CheckpointTarget, name: item.name as string }));
    return true;
  }

  private deletedMeanwhile(): NotFoundError {
    return new NotFoundError('The checkpoint was deleted meanwhile; list your checkpoints to see the ones left.');
  }

  /** The checkpoints among the items, leaving out those past their time to live. */
  private live(items: Item[]): TrainingCheckpoint[] {
    const now = this.clock.now().getTime();
    return items.filter((item) => typeof item.expires_at !== 'string' || Date.parse(item.expires_at) > now).map(toCheckpoint);
  }
}

function withExternal(checkpoints: TrainingCheckpoint[], external: boolean): TrainingCheckpoint[] {
  return external ? checkpoints : checkpoints.filter((checkpoint): checkpoint is TrainingCheckpoint<TrainOrSampleTarget> => checkpoint.target !== 'external');
}

function toItem(checkpoint: TrainingCheckpoint): Record<string, unknown> {
  return {
    id: checkpoint.id,
    run_id: checkpoint.runId,
    user_id: checkpoint.userId,
    name: checkpoint.name,
    target: checkpoint.target,
    path: checkpoint.path,
    base_model: checkpoint.baseModel,
    lora_config: checkpoint.loraConfig,
    step: checkpoint.step,
    files: checkpoint.files,
    size_bytes: checkpoint.sizeBytes,
    ephemeral: checkpoint.ephemeral,
    expires_at: checkpoint.expiresAt,
    public: checkpoint.public,
    created_at: checkpoint.createdAt,
  };
}

function toCheckpoint(item: Item): TrainingCheckpoint {
  return {
    id: item.id as string,
    runId: item.run_id as string,
    userId: item.user_id as string,
    name: item.name as string,
    target: item.target as CheckpointTarget,
    path: item.path as string,
    baseModel: item.base_model as string,
    loraConfig: item.lora_config as TrainingCheckpoint['loraConfig'],
    step: item.step as number,
    files: item.files as TrainingCheckpoint['files'],
    sizeBytes: item.size_bytes as number,
    ephemeral: item.ephemeral as boolean,
    expiresAt: item.expires_at as string | null,
    public: item.public === true,
    createdAt: item.created_at as string,
  };
}

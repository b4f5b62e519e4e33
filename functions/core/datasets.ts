import { createHash } from 'node:crypto';
import type { Blobs } from '../ports/blobs.ts';
import type { Clock } from '../ports/clock.ts';
import type { Item, Key, Store } from '../ports/store.ts';
import type { Generator, TargetConfig } from '../schemas/bread.ts';
import type { Actor } from './actor.ts';
import { countQuestions, type DatasetFormat } from './dataset-content.ts';
import { datasetUriAllowed, isDatasetUri, normaliseDatasetUriPrefixes } from './dataset-uris.ts';
import { ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError, ValidationError } from './errors.ts';
import { SHIPPED_DATASETS } from './generators.ts';
import { createImmutable, deleteUnreferenced } from './immutable.ts';
import { keys, resourceName } from './keys.ts';
import { assertValidName, nameProblem } from './names.ts';

/**
 * Datasets users upload for `from_dataset` generators, and the one rule for what a generator's
 * `dataset` may name: a shipped dataset, one of the caller's uploads, or a URI under a prefix the
 * operator allows. The engine is only ever given URIs resolved here (`resolveForJob`).
 */

/** 4 MiB: under the API's 8 MiB body limit, and still under Lambda's 6 MB request once base64-encoded. */
export const DATASET_MAX_BYTES = 4 * 1024 * 1024;

export interface DatasetInfo {
  dataset_name: string;
  format: DatasetFormat;
  size: number;
  lines: number;
  created_at: string;
}

/** Where a dataset's bytes live: under the user's own prefix, one file per name and content. */
export const datasetBlobs = {
  file: (userId: string, name: string, digest: string, format: DatasetFormat) => `datasets/${userId}/${name}/${digest}.${format}`,
};

const SHIPPED = new Set<string>(SHIPPED_DATASETS);

const ALLOWED_FORMS =
  `use a shipped dataset (${SHIPPED_DATASETS.join(', ')}), a dataset you uploaded with PUT /v1/datasets/{name}, ` +
  'or a file:// or s3:// JSONL or CSV URI under a prefix the operator allows';

export class DatasetService {
  private readonly uriPrefixes: string[];

  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly clock: Clock,
    uriPrefixes: readonly string[] = [],
  ) {
    this.uriPrefixes = normaliseDatasetUriPrefixes(uriPrefixes);
  }

  /** Stores an upload; datasets are immutable like Bread resources (201 new, 200 identical, 409 different). */
  async upload(actor: Actor, name: string, bytes: Uint8Array, format: DatasetFormat): Promise<{ created: boolean; dataset: DatasetInfo }> {
    assertUploadName(name);
    if (bytes.byteLength > DATASET_MAX_BYTES) {
      throw new PayloadTooLargeError(`A dataset may be at most ${DATASET_MAX_BYTES} bytes (${DATASET_MAX_BYTES / 1024 / 1024} MiB); this one has ${bytes.byteLength}.`);
    }
    const lines = countQuestions(bytes, format);
    const digest = createHash('sha256').update(bytes).digest('hex');
    const blobKey = datasetBlobs.file(actor.userId, name, digest.slice(0, 32), format);
    // The content's own key, so a losing concurrent upload never overwrites the winner's bytes.
    await this.blobs.put(blobKey, bytes, format === 'csv' ? 'text/csv' : 'application/jsonl');
    const item: Item = {
      ...keys.dataset(actor.userId, name),
      dataset_name: name,
      format,
      size: bytes.byteLength,
      lines,
      sha256: digest,
      blob_key: blobKey,
      created_at: this.clock.now().toISOString(),
    };
    try {
      const result = await createImmutable(this.store, {
        item,
        content: (stored) => [stored.sha256, stored.format],
        conflictMessage: `Dataset '${name}' already exists with different content. Datasets are immutable: delete it first, or upload under another name.`,
      });
      return { created: result.created, dataset: toInfo(result.item) };
    } catch (error) {
      if (error instanceof ConflictError) await this.blobs.deletePrefix(blobKey);
      throw error;
    }
  }

  async list(actor: Actor): Promise<DatasetInfo[]> {
    const { items } = await this.store.query(keys.datasetPartition(actor.userId));
    return items.map(toInfo);
  }

  async get(actor: Actor, name: string): Promise<DatasetInfo> {
    return toInfo(await this.getItem(actor, name));
  }

  /** Refused while a target uses the dataset: a stim job may still be run from it. */
  async delete(actor: Actor, name: string): Promise<void> {
    const item = await this.getItem(actor, name);
    const deleted = await deleteUnreferenced(this.store, this.key(actor, name), [], async () => {
      const users = await this.targetsUsing(actor, name);
      return new ConflictError(`Dataset '${name}' is used by targets: ${users.join(', ')}. Delete those targets first.`);
    });
    if (!deleted) throw notFound(name);
    // This content's own file only: a new upload under the name meanwhile keeps its bytes.
    await this.blobs.deletePrefix(item.blob_key as string);
  }

  /**
   * Checks each `from_dataset` generator's dataset and returns the uploads it names, for the
   * target to hold a reference on (so they cannot be deleted under it). Another user's upload is
   * simply an unknown name.
   */
  references(actor: Actor, generators: readonly Generator[]): { key: Key; missing: () => Error }[] {
    return datasetsOf(generators).flatMap(({ dataset, index }) => {
      const kind = this.kindOf(dataset, index);
      if (kind !== 'upload') return [];
      return [{ key: keys.dataset(actor.userId, dataset), missing: () => unknownDataset(dataset, index) }];
    });
  }

  /** The keys of the uploads a stored target names, to release when it is deleted. */
  referencedKeys(actor: Actor, config: TargetConfig): Key[] {
    return datasetsOf(config.generators)
      .filter(({ dataset }) => formOf(dataset) === 'upload')
      .map(({ dataset }) => keys.dataset(actor.userId, dataset));
  }

  /**
   * What the stim job's engine may read: each non-shipped dataset → its URI. Checked again here,
   * since a target stored earlier (or before the operator narrowed the prefixes) may name a URI
   * that is no longer allowed.
   */
  async resolveForJob(actor: Actor, generators: readonly Generator[]): Promise<Record<string, string>> {
    const resolved: Record<string, string> = {};
    for (const { dataset, index } of datasetsOf(generators)) {
      const kind = this.kindOf(dataset, index);
      if (kind === 'uri') resolved[dataset] = dataset;
      if (kind !== 'upload') continue;
      const item = await this.store.get(keys.dataset(actor.userId, dataset));
      if (!item) throw unknownDataset(dataset, index);
      resolved[dataset] = this.blobs.uriFor(item.blob_key as string);
    }
    return resolved;
  }

  /** The dataset's form, or the error refusing it. */
  private kindOf(dataset: string, index: number): 'shipped' | 'uri' | 'upload' {
    const form = formOf(dataset);
    // The same answer whether or not anything exists at the URI: the API never looks.
    if (form === 'uri' && !datasetUriAllowed(dataset, this.uriPrefixes)) {
      throw new ValidationError(`Invalid generator ${index} (from_dataset): this dataset URI is not allowed; ${ALLOWED_FORMS}.`);
    }
    if (form === 'unknown') throw unknownDataset(dataset, index);
    return form;
  }

  private async getItem(actor: Actor, name: string): Promise<Item> {
    const item = await this.store.get(this.key(actor, name));
    if (!item) throw notFound(name);
    return item;
  }

  private key(actor: Actor, name: string): Key {
    assertValidName(name, 'target');
    return keys.dataset(actor.userId, name);
  }

  private async targetsUsing(actor: Actor, name: string): Promise<string[]> {
    const { items: repos } = await this.store.query(keys.repoPartition(actor.userId));
    const users: string[] = [];
    for (const repo of repos) {
      const repoName = repo.repo_name as string;
      const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'target'));
      for (const target of items) {
        const config = target.config as TargetConfig;
        if (datasetsOf(config.generators).some(({ dataset }) => dataset === name)) users.push(`${repoName}/${resourceName('target', target.sk)}`);
      }
    }
    return users;
  }
}

/** Uploaded names follow the resource name rules and may not shadow a shipped dataset. */
function assertUploadName(name: string): void {
  assertValidName(name, 'target');
  if (SHIPPED.has(name)) throw new ValidationError(`Name '${name}' is reserved for a shipped dataset; choose another name.`);
}

function formOf(dataset: string): 'shipped' | 'uri' | 'upload' | 'unknown' {
  if (SHIPPED.has(dataset)) return 'shipped';
  if (isDatasetUri(dataset)) return 'uri';
  return nameProblem(dataset, 'target') ? 'unknown' : 'upload';
}

function datasetsOf(generators: readonly Generator[]): { dataset: string; index: number }[] {
  return generators.flatMap((generator, index) =>
    generator.type === 'from_dataset' && generator.dataset ? [{ dataset: generator.dataset, index }] : [],
  );
}

function unknownDataset(dataset: string, index: number): InvalidInputError {
  return new InvalidInputError(`Invalid generator ${index} (from_dataset): unknown dataset '${dataset}'; ${ALLOWED_FORMS}.`);
}

function notFound(name: string): NotFoundError {
  return new NotFoundError(`Dataset '${name}' not found`);
}

function toInfo(item: Item): DatasetInfo {
  return {
    dataset_name: item.dataset_name as string,
    format: item.format as DatasetFormat,
    size: item.size as number,
    lines: item.lines as number,
    created_at: item.created_at as string,
  };
}

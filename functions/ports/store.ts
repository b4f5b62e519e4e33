/**
 * The Store port: the DynamoDB item model, kept small enough that a SQLite file can honour it
 * with the same conditional semantics. Domain repositories are written once on top of it.
 *
 * Items are plain JSON objects addressed by (pk, sk). An item may carry `gsi1pk`/`gsi1sk` to
 * appear in the one secondary index, and `ttl` (epoch seconds): once it has passed, the item is
 * absent to reads, conditions and updates alike.
 *
 * Limits both adapters enforce, because DynamoDB does: a transaction names each item at most once
 * and holds at most 100 ops; an update never changes `pk`/`sk` and names an attribute once across
 * set, remove and add. Index (gsi1) queries are eventually consistent on DynamoDB; a page's cursor
 * may lead to an empty last page. Items stay under DynamoDB's 400 KB.
 */

export type Scalar = string | number | boolean | null;

export interface Key {
  pk: string;
  sk: string;
}

export type Item = Key & {
  gsi1pk?: string;
  gsi1sk?: string;
  ttl?: number;
  [attribute: string]: unknown;
};

/**
 * A write condition on the item currently stored at the key. Every clause must hold.
 * - `exists: false` — no item is stored (conditional create).
 * - `exists: true` — an item is stored.
 * - `equals` — each named top-level attribute equals the value (implies the item exists).
 * - `oneOf` — each named top-level attribute equals one of the values (implies the item exists).
 * - `absent` — each named top-level attribute is missing from the item (implies the item exists).
 */
export interface Condition {
  exists?: boolean;
  equals?: Record<string, Scalar>;
  oneOf?: Record<string, Scalar[]>;
  absent?: string[];
}

export interface UpdateSpec {
  /** Top-level attributes to set. */
  set?: Record<string, unknown>;
  /** Top-level attributes to remove. */
  remove?: string[];
  /** Atomic numeric increments of top-level attributes (a missing attribute counts as 0). */
  add?: Record<string, number>;
  condition?: Condition;
  /** Create the item when it is missing (DynamoDB UpdateItem semantics). Default true. */
  upsert?: boolean;
}

export interface QueryInput {
  /** Partition to read: `pk`, or `gsi1pk` when `index` is `gsi1`. */
  pk: string;
  index?: 'gsi1';
  /** Only sort keys beginning with this prefix. */
  skPrefix?: string;
  /** Page size; unset reads every matching item (adapters follow pages internally). */
  limit?: number;
  /** Opaque cursor from a previous page's `cursor`. */
  cursor?: string;
  /** Sort-key order; default ascending (byte order, as DynamoDB). */
  descending?: boolean;
}

export interface QueryPage {
  items: Item[];
  /** Present when more items may follow. */
  cursor?: string;
}

export type TransactOp =
  | { kind: 'put'; item: Item; condition?: Condition }
  | { kind: 'update'; key: Key; update: UpdateSpec }
  | { kind: 'delete'; key: Key; condition?: Condition }
  | { kind: 'check'; key: Key; condition: Condition };

export interface Store {
  get(key: Key): Promise<Item | undefined>;
  /** Writes the whole item. Throws `ConditionFailedError` when the condition does not hold. */
  put(item: Item, condition?: Condition): Promise<void>;
  /** Applies the update and returns the item as stored afterwards. */
  update(key: Key, update: UpdateSpec): Promise<Item>;
  /** Removes the item; returns it as it was, or undefined when none was stored. */
  delete(key: Key, condition?: Condition): Promise<Item | undefined>;
  query(input: QueryInput): Promise<QueryPage>;
  /** All-or-nothing; throws `TransactionFailedError` naming the ops whose conditions failed. */
  transact(ops: TransactOp[]): Promise<void>;
  close(): Promise<void>;
}

export class ConditionFailedError extends Error {
  constructor(readonly key: Key) {
    super(`Condition failed for ${key.pk} / ${key.sk}`);
    this.name = 'ConditionFailedError';
  }
}

/** Lets a write that lost to another writer (its condition failed) pass; anything else is thrown. */
export function ignoreConditionFailed(error: unknown): void {
  if (!(error instanceof ConditionFailedError)) throw error;
}

/** A conditional put that answers whether its condition held, for claims raced by several writers. */
export async function putIf(store: Store, item: Item, condition: Condition): Promise<boolean> {
  try {
    await store.put(item, condition);
    return true;
  } catch (error) {
    ignoreConditionFailed(error);
    return false;
  }
}

export class TransactionFailedError extends Error {
  /** Indexes of the ops whose conditions did not hold. */
  constructor(readonly failedOps: number[]) {
    super(`Transaction cancelled: conditions failed at ops ${failedOps.join(', ')}`);
    this.name = 'TransactionFailedError';
  }
}

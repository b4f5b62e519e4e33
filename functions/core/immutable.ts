import { ConditionFailedError, TransactionFailedError, type Item, type Key, type Store, type TransactOp } from '../ports/store.ts';
import { ConflictError } from './errors.ts';
import { sameContent } from './json.ts';

/**
 * Bread resources are immutable (DESIGN.md §4): a create writes the item only where none exists,
 * and a repeat answers from what is stored — the same content is a success, other content a 409.
 *
 * A resource that names others (a target its prompts, a bake its targets and parent) holds a
 * reference count on each, raised in the same transaction as the create; deletes require a zero
 * count. That closes the race between creating a dependant and deleting what it depends on.
 */

export interface ImmutableCreate {
  item: Item;
  /** The part of the item that must match an existing one for the repeat to count as identical. */
  content: (item: Item) => unknown;
  conflictMessage: string;
  /** Items this one depends on, each of which must exist. */
  references?: { key: Key; missing: () => Error }[];
}

export interface CreateResult {
  created: boolean;
  item: Item;
}

/** Items carry their dependants count under this attribute. */
export const REFS = 'refs';

export async function createImmutable(store: Store, request: ImmutableCreate): Promise<CreateResult> {
  const item = { ...request.item, [REFS]: 0 };
  const references = uniqueByKey(request.references ?? []);
  // A create that loses to a concurrent delete of the same name simply tries again.
  for (let attempt = 0; ; attempt++) {
    const outcome = await tryCreate(store, item, references);
    if (outcome === 'created') return { created: true, item };
    if (outcome !== 'exists') throw references[outcome]!.missing();
    const existing = await store.get({ pk: item.pk, sk: item.sk });
    if (!existing) {
      if (attempt < 3) continue;
      throw new Error(`Item ${item.pk} / ${item.sk} kept appearing and disappearing`);
    }
    if (sameContent(request.content(existing), request.content(item))) return { created: false, item: existing };
    throw new ConflictError(request.conflictMessage);
  }
}

/**
 * Writes the item where none exists, raising each reference's count in the same transaction.
 * Returns 'exists' when an item is already stored, or the index of a missing reference.
 */
async function tryCreate(store: Store, item: Item, references: { key: Key }[]): Promise<'created' | 'exists' | number> {
  try {
    // A lone conditional put needs no transaction (and meets no transaction conflicts).
    if (references.length === 0) await store.put(item, { exists: false });
    else {
      await store.transact([
        { kind: 'put', item, condition: { exists: false } },
        ...references.map(
          (reference): TransactOp => ({ kind: 'update', key: reference.key, update: { add: { [REFS]: 1 }, upsert: false } }),
        ),
      ]);
    }
    return 'created';
  } catch (error) {
    if (error instanceof ConditionFailedError) return 'exists';
    if (!(error instanceof TransactionFailedError)) throw error;
    const missing = error.failedOps.find((index) => index > 0);
    return missing === undefined ? 'exists' : missing - 1;
  }
}

/**
 * Deletes an item nothing depends on and releases its own references. Returns false when the
 * item is missing; throws `inUse()` when something still depends on it.
 */
export async function deleteUnreferenced(
  store: Store,
  key: Key,
  references: Key[],
  inUse: () => Promise<Error>,
): Promise<boolean> {
  const unreferenced = { equals: { [REFS]: 0 } };
  const releases = uniqueByKey(references.map((reference) => ({ key: reference })));
  try {
    if (releases.length === 0) return (await store.delete(key, unreferenced)) !== undefined;
    await store.transact([
      { kind: 'delete', key, condition: unreferenced },
      ...releases.map(({ key: reference }): TransactOp => ({ kind: 'update', key: reference, update: { add: { [REFS]: -1 }, upsert: false } })),
    ]);
    return true;
  } catch (error) {
    if (!(error instanceof ConditionFailedError || error instanceof TransactionFailedError)) throw error;
    if (!(await store.get(key))) return false;
    throw await inUse();
  }
}

function uniqueByKey<T extends { key: Key }>(entries: T[]): T[] {
  const seen = new Set<string>();
  return entries.filter(({ key }) => {
    const id = `${key.pk}\u0000${key.sk}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

import { TransactionFailedError, type Item, type Key, type Store, type TransactOp } from '../ports/store.ts';
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
  const references = uniqueByKey(request.references ?? []);
  const ops: TransactOp[] = [
    { kind: 'put', item: { ...request.item, [REFS]: 0 }, condition: { exists: false } },
    ...references.map(
      (reference): TransactOp => ({ kind: 'update', key: reference.key, update: { add: { [REFS]: 1 }, upsert: false } }),
    ),
  ];
  // A create that loses to a concurrent delete of the same name simply tries again.
  for (let attempt = 0; ; attempt++) {
    try {
      await store.transact(ops);
      return { created: true, item: { ...request.item, [REFS]: 0 } };
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      const missing = error.failedOps.find((index) => index > 0);
      if (missing !== undefined) throw references[missing - 1]!.missing();
      const existing = await store.get(request.item);
      if (!existing) {
        if (attempt < 3) continue;
        throw error;
      }
      if (sameContent(request.content(existing), request.content(request.item))) return { created: false, item: existing };
      throw new ConflictError(request.conflictMessage);
    }
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
  const ops: TransactOp[] = [
    { kind: 'delete', key, condition: { equals: { [REFS]: 0 } } },
    ...uniqueByKey(references.map((reference) => ({ key: reference }))).map(
      ({ key: reference }): TransactOp => ({ kind: 'update', key: reference, update: { add: { [REFS]: -1 }, upsert: false } }),
    ),
  ];
  try {
    await store.transact(ops);
    return true;
  } catch (error) {
    if (!(error instanceof TransactionFailedError)) throw error;
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

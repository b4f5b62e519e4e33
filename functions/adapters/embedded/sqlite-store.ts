/**
 * SqliteStore: the Store port on one SQLite file, for the embedded runtime.
 *
 * Each item is stored whole as JSON; the key, index and ttl attributes are copied into columns
 * so that SQLite can seek and sort on them. Every write runs in a `BEGIN IMMEDIATE` transaction
 * that takes the file's write lock before reading the current item, so a condition checked in
 * JS still holds when the write lands — also across processes sharing the file.
 */
import Database from 'better-sqlite3';
import {
  ConditionFailedError,
  TransactionFailedError,
  type Condition,
  type Item,
  type Key,
  type QueryInput,
  type QueryPage,
  type Store,
  type TransactOp,
  type UpdateSpec,
} from '#ports/store.ts';

// TEXT columns use SQLite's BINARY collation: memcmp over UTF-8, DynamoDB's sort-key order.
// The index carries pk/sk so that ties on gsi1sk are ordered (and paged) without a sort step.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gsi1pk TEXT,
    gsi1sk TEXT,
    ttl INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
  );
  CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk, pk, sk);
`;

/** DynamoDB's per-transaction limit, enforced here too so code that passes locally passes on AWS. */
const MAX_TRANSACT_OPS = 100;

interface Row {
  data: string;
  ttl: number | null;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  /** `path` is a database file (its directory must exist) or ':memory:'. */
  constructor(path: string) {
    // The busy timeout makes a writer wait for another process's write lock instead of failing.
    this.db = new Database(path, { timeout: 5_000 });
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL survives process crashes; only an OS crash can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
  }

  async get(key: Key): Promise<Item | undefined> {
    return this.read(key);
  }

  async put(item: Item, condition?: Condition): Promise<void> {
    this.writeTransaction(() => {
      if (!conditionHolds(condition, this.read(item))) throw new ConditionFailedError(keyOf(item));
      this.write(item);
    });
  }

  async update(key: Key, update: UpdateSpec): Promise<Item> {
    return this.writeTransaction(() => {
      const current = this.read(key);
      if (!updateConditionHolds(update, current)) throw new ConditionFailedError(keyOf(key));
      return this.write(applyUpdate(current ?? keyOf(key), update));
    });
  }

  async delete(key: Key, condition?: Condition): Promise<Item | undefined> {
    return this.writeTransaction(() => {
      const current = this.read(key);
      if (!conditionHolds(condition, current)) throw new ConditionFailedError(keyOf(key));
      // Also clears an expired row, which `read` already reports as absent.
      this.statement('DELETE FROM items WHERE pk = ? AND sk = ?').run(key.pk, key.sk);
      return current;
    });
  }

  async query(input: QueryInput): Promise<QueryPage> {
    const { limit } = input;
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      throw new RangeError(`query limit must be a positive integer, got ${limit}`);
    }
    const gsi = input.index === 'gsi1';
    const [pkColumn, skColumn] = gsi ? ['gsi1pk', 'gsi1sk'] : ['pk', 'sk'];
    const order = input.descending ? 'DESC' : 'ASC';
    const params: Record<string, unknown> = { pk: input.pk, now: nowSeconds(), limit: -1 };
    // Items without a gsi1sk are not in the index, as in DynamoDB's sparse GSIs.
    const where = [`${pkColumn} = @pk`, '(ttl IS NULL OR ttl >= @now)'];
    if (gsi) where.push('gsi1sk IS NOT NULL');

    if (input.skPrefix) {
      params.prefix = input.skPrefix;
      params.prefixEnd = prefixEnd(input.skPrefix);
      where.push(`${skColumn} >= @prefix`);
      where.push(
        params.prefixEnd === undefined
          ? `substr(${skColumn}, 1, length(@prefix)) = @prefix`
          : `${skColumn} < @prefixEnd`,
      );
    }
    if (input.cursor) {
      const after = decodeCursor(input.cursor, gsi);
      const op = input.descending ? '<' : '>';
      Object.assign(params, { afterPk: after.pk, afterSk: after.sk, afterGsi1sk: after.gsi1sk });
      where.push(gsi ? `(gsi1sk, pk, sk) ${op} (@afterGsi1sk, @afterPk, @afterSk)` : `sk ${op} @afterSk`);
    }
    // One row beyond the page tells whether a cursor is needed.
    if (limit !== undefined) params.limit = limit + 1;

    const orderBy = (gsi ? ['gsi1sk', 'pk', 'sk'] : ['sk']).map((column) => `${column} ${order}`);
    const sql = `SELECT data FROM items WHERE ${where.join(' AND ')} ORDER BY ${orderBy.join(', ')} LIMIT @limit`;
    const rows = this.statement(sql).all(params) as Pick<Row, 'data'>[];
    const items = rows.map((row) => JSON.parse(row.data) as Item);

    if (limit === undefined || items.length <= limit) return { items };
    items.length = limit;
    return { items, cursor: encodeCursor(items[limit - 1]!, gsi) };
  }

  async transact(ops: TransactOp[]): Promise<void> {
    if (ops.length > MAX_TRANSACT_OPS) throw new RangeError(`at most ${MAX_TRANSACT_OPS} ops per transaction`);
    const keys = new Set(ops.map((op) => JSON.stringify(keyOf(op.kind === 'put' ? op.item : op.key))));
    // DynamoDB rejects a transaction touching one item twice; so do we.
    if (keys.size !== ops.length) throw new Error('A transaction may touch each item only once');
    // DynamoDB's TransactWriteItems requires an UpdateExpression; keep the adapters alike.
    if (ops.some((op) => op.kind === 'update' && !changesSomething(op.update))) {
      throw new Error('An update inside a transaction must set, remove or add something');
    }

    this.writeTransaction(() => {
      // Conditions are all judged against the state before the transaction, as in DynamoDB.
      const failed = ops.flatMap((op, index) => {
        switch (op.kind) {
          case 'put':
            return conditionHolds(op.condition, this.read(op.item)) ? [] : [index];
          case 'update':
            return updateConditionHolds(op.update, this.read(op.key)) ? [] : [index];
          case 'delete':
          case 'check':
            return conditionHolds(op.condition, this.read(op.key)) ? [] : [index];
        }
      });
      if (failed.length > 0) throw new TransactionFailedError(failed);

      for (const op of ops) {
        if (op.kind === 'put') this.write(op.item);
        if (op.kind === 'update') this.write(applyUpdate(this.read(op.key) ?? keyOf(op.key), op.update));
        if (op.kind === 'delete') this.statement('DELETE FROM items WHERE pk = ? AND sk = ?').run(op.key.pk, op.key.sk);
      }
    });
  }

  async close(): Promise<void> {
    this.db.close();
  }

  /** The item stored at the key, or undefined when none is stored or it has expired. */
  private read(key: Key): Item | undefined {
    const row = this.statement('SELECT data, ttl FROM items WHERE pk = ? AND sk = ?').get(key.pk, key.sk) as
      | Row
      | undefined;
    if (!row || (row.ttl !== null && row.ttl < nowSeconds())) return undefined;
    return JSON.parse(row.data) as Item;
  }

  /** Stores the whole item and returns it as a later read will (JSON drops `undefined`s). */
  private write(item: Item): Item {
    assertKeyAttributes(item);
    const data = JSON.stringify(item);
    this.statement(
      `INSERT OR REPLACE INTO items (pk, sk, gsi1pk, gsi1sk, ttl, data)
       VALUES (@pk, @sk, @gsi1pk, @gsi1sk, @ttl, @data)`,
    ).run({
      pk: item.pk,
      sk: item.sk,
      gsi1pk: item.gsi1pk ?? null,
      gsi1sk: item.gsi1sk ?? null,
      // DynamoDB's TTL ignores non-numeric values; so does expiry here.
      ttl: typeof item.ttl === 'number' ? item.ttl : null,
      data,
    });
    return JSON.parse(data) as Item;
  }

  /** Runs `fn` holding the database write lock, so reads inside it cannot go stale. */
  private writeTransaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

function nowSeconds(): number {
  return Date.now() / 1000;
}

function keyOf(key: Key): Item {
  return { pk: key.pk, sk: key.sk };
}

function conditionHolds(condition: Condition | undefined, item: Item | undefined): boolean {
  if (!condition) return true;
  const equals = Object.entries(condition.equals ?? {});
  const oneOf = Object.entries(condition.oneOf ?? {});
  if (condition.exists === false && item) return false;
  const absent = condition.absent ?? [];
  if (!item) return condition.exists !== true && equals.length === 0 && oneOf.length === 0 && absent.length === 0;
  return (
    equals.every(([name, value]) => item[name] === value) &&
    oneOf.every(([name, values]) => values.some((value) => item[name] === value)) &&
    absent.every((name) => !(name in item))
  );
}

function updateConditionHolds(update: UpdateSpec, item: Item | undefined): boolean {
  return (update.upsert !== false || item !== undefined) && conditionHolds(update.condition, item);
}

function changesSomething(update: UpdateSpec): boolean {
  return [update.set ?? {}, update.remove ?? [], update.add ?? {}].some((part) => Object.keys(part).length > 0);
}

/** DynamoDB UpdateItem semantics on a plain object; rejects what DynamoDB would reject. */
function applyUpdate(base: Item, update: UpdateSpec): Item {
  const set = Object.entries(update.set ?? {});
  const remove = update.remove ?? [];
  const add = Object.entries(update.add ?? {});
  const names = [...set.map(([name]) => name), ...remove, ...add.map(([name]) => name)];
  if (names.includes('pk') || names.includes('sk')) throw new Error('An update cannot change pk or sk');
  if (new Set(names).size !== names.length) throw new Error('An update may name each attribute once');

  const next: Item = { ...base };
  for (const [name, value] of set) next[name] = value;
  for (const name of remove) delete next[name];
  for (const [name, delta] of add) {
    const current = next[name] ?? 0;
    if (typeof current !== 'number') throw new TypeError(`Cannot add to non-numeric attribute ${name}`);
    next[name] = current + delta;
  }
  return next;
}

/** DynamoDB refuses empty or non-string key attributes; failing here keeps the adapters alike. */
function assertKeyAttributes(item: Item): void {
  for (const name of ['pk', 'sk', 'gsi1pk', 'gsi1sk'] as const) {
    const value: unknown = item[name];
    const optional = name === 'gsi1pk' || name === 'gsi1sk';
    if ((optional && value === undefined) || (typeof value === 'string' && value !== '')) continue;
    throw new TypeError(`Item attribute ${name} must be a non-empty string`);
  }
}

/**
 * The smallest string above every string that starts with `prefix`: the prefix with its last code
 * point incremented (UTF-8 byte order follows code point order). Undefined where that would land
 * in the surrogate range or past U+10FFFF; the caller then filters with substr instead.
 */
function prefixEnd(prefix: string): string | undefined {
  const codePoints = Array.from(prefix);
  const last = codePoints.pop()!.codePointAt(0)!;
  if (last + 1 >= 0xd800 && last + 1 <= 0xdfff) return undefined;
  if (last + 1 > 0x10ffff) return undefined;
  return codePoints.join('') + String.fromCodePoint(last + 1);
}

/** The cursor is the last item's key attributes, shaped like DynamoDB's LastEvaluatedKey. */
function encodeCursor(item: Item, gsi: boolean): string {
  const key = gsi ? { pk: item.pk, sk: item.sk, gsi1pk: item.gsi1pk, gsi1sk: item.gsi1sk } : keyOf(item);
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string, gsi: boolean): { pk: string; sk: string; gsi1sk?: string } {
  let key: Record<string, unknown> | undefined;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    // reported below
  }
  const fields = gsi ? ['pk', 'sk', 'gsi1sk'] : ['pk', 'sk'];
  if (!key || !fields.every((field) => typeof key[field] === 'string')) throw new Error('Invalid query cursor');
  return key as { pk: string; sk: string; gsi1sk?: string };
}

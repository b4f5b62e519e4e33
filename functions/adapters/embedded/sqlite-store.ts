/**
 * SqliteStore: the Store port on one SQLite file, for the embedded runtime.
 *
 * Each item is stored whole as JSON; the key, index and ttl attributes are copied into columns
 * so that SQLite can seek and sort on them. Every write runs in a `BEGIN IMMEDIATE` transaction
 * that takes the file's write lock before reading the current item, so a condition checked in
 * JS still holds when the write lands — also across processes sharing the file.
 *
 * SQLite's own failures that a user can act on become domain errors: a damaged file
 * (DamagedDatabaseError, 503 until a backup is restored) and a full disk (507).
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { InsufficientStorageError, StorageDamagedError } from '#core/errors.ts';
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

/** How long a statement waits for another process's lock before it fails. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Runs the set-up of a connection again while another process holds a lock it needs: switching a
 * file to WAL takes an exclusive lock, and SQLite answers BUSY at once there rather than calling
 * the busy handler, so two processes opening one file together would otherwise fail.
 */
function retryWhileBusy(setUp: () => void): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return setUp();
    } catch (error) {
      if (!(error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY')) || Date.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10 + Math.random() * 40); // the constructor is synchronous
    }
  }
}

/** SQLite's result codes for a damaged file: corruption found, or no database at all. */
const DAMAGE_CODE = /^SQLITE_(CORRUPT|NOTADB)/;

/** better-sqlite3 as the worker below loads it: a worker evaluated from a string has only `require`. */
const SQLITE_DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');

/** `checkIntegrity` in a worker thread: posts quick_check's verdict, or the error that stopped it. */
const QUICK_CHECK_WORKER = `
  const { parentPort, workerData } = require('node:worker_threads');
  const Database = require(workerData.driver);
  let db;
  try {
    db = new Database(workerData.file, { readonly: true, fileMustExist: true, timeout: 5000 });
    parentPort.postMessage({ verdict: db.pragma('quick_check(1)', { simple: true }) });
  } catch (error) {
    parentPort.postMessage({ code: error.code, message: error.message });
  } finally {
    db?.close();
  }
`;

/** DynamoDB's per-transaction limit, enforced here too so code that passes locally passes on AWS. */
const MAX_TRANSACT_OPS = 100;

interface Row {
  data: string;
  ttl: number | null;
}

/**
 * The database file is damaged: SQLite reported corruption, or the file is not a database at all.
 * Its message is the one API clients see; `file` and `reason` are for the operator.
 */
export class DamagedDatabaseError extends StorageDamagedError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super();
  }
}

export class SqliteStore implements Store {
  /** The database file, absolute, or ':memory:'. */
  readonly path: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** Set at the first sign of damage; from then on every call fails with it (see `guard`). */
  private damage: DamagedDatabaseError | undefined;
  /** The worker running `checkIntegrity`, stopped with the store. */
  private integrityCheck: Worker | undefined;

  /** `path` is a database file (its directory must exist) or ':memory:'. */
  constructor(path: string) {
    this.path = path === ':memory:' ? path : resolve(path);
    // The busy timeout makes a writer wait for another process's write lock instead of failing.
    this.db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    try {
      this.guard(() =>
        retryWhileBusy(() => {
          // The first statement that reads the file: a damaged header fails here.
          this.db.pragma('journal_mode = WAL');
          // WAL + NORMAL survives process crashes; only an OS crash can lose the last commits.
          this.db.pragma('synchronous = NORMAL');
          this.db.exec(SCHEMA);
        }),
      );
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  /**
   * Runs SQLite's `quick_check` (every page and b-tree, without matching indexes against the
   * table) and rejects with DamagedDatabaseError when it finds damage. Its cost grows with the
   * file: 0.1–0.5 s for 100k items (110 MB) in the page cache, seconds from a slow disk. So it runs
   * on its own connection in a worker thread, and a caller that gives `waitMs` goes on after that
   * long; damage found later still stops the store, as damage found by any call does.
   */
  async checkIntegrity(waitMs?: number): Promise<void> {
    if (this.damage) throw this.damage;
    if (this.path === ':memory:') return; // no file to be damaged, nor to open a second time
    const worker = new Worker(QUICK_CHECK_WORKER, { eval: true, workerData: { file: this.path, driver: SQLITE_DRIVER } });
    worker.unref();
    this.integrityCheck = worker;
    const checked = new Promise<void>((done, fail) => {
      worker.once('error', fail);
      worker.once('message', ({ verdict, code, message }: { verdict?: string; code?: string; message?: string }) => {
        if (verdict === 'ok') return done();
        if (verdict !== undefined) return fail(this.damaged(`quick_check: ${verdict.replace(/^\*\*\* in database main \*\*\*\n/, '')}`));
        if (code && DAMAGE_CODE.test(code)) return fail(this.damaged(message ?? code));
        // A check that cannot run (the file busy or unreadable) is not a verdict on the data.
        console.error(JSON.stringify({ level: 'warn', msg: `The integrity check of ${this.path} could not run: ${message}` }));
        done();
      });
    });
    if (waitMs === undefined) return checked;
    await Promise.race([checked, new Promise<void>((done) => setTimeout(done, waitMs).unref())]);
  }

  async get(key: Key): Promise<Item | undefined> {
    return this.guard(() => this.read(key));
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
    const rows = this.guard(() => this.statement(sql).all(params) as Pick<Row, 'data'>[]);
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
    await this.integrityCheck?.terminate();
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
    return this.guard(() => this.db.transaction(fn).immediate());
  }

  /**
   * Runs `fn` against the database and turns SQLite's damage and full-disk failures into domain
   * errors. Once damage is seen the store refuses all further work: reads of a damaged file can
   * return wrong data and writes can spread the damage, so every request gets the same 503
   * rather than some being served and others failing.
   */
  private guard<T>(fn: () => T): T {
    if (this.damage) throw this.damage;
    try {
      return fn();
    } catch (error) {
      if (!(error instanceof Database.SqliteError)) throw error;
      if (DAMAGE_CODE.test(error.code)) throw this.damaged(error.message);
      // SQLite's unix file layer reports a write that hit ENOSPC as SQLITE_FULL.
      if (error.code === 'SQLITE_FULL') throw new InsufficientStorageError();
      throw error;
    }
  }

  /** Latches the damage and reports it once, loudly: the operator has to act. */
  private damaged(reason: string): DamagedDatabaseError {
    if (!this.damage) {
      this.damage = new DamagedDatabaseError(this.path, reason);
      console.error(
        JSON.stringify({
          level: 'fatal',
          msg: `The database ${this.path} is damaged (${reason}). Nothing is read from or written to it any more (requests get 503): stop the server and restore a backup (README.md, "Backup and restore").`,
        }),
      );
    }
    return this.damage;
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

/**
 * DynamoDbStore: the Store port on one DynamoDB table (pk/sk, GSI `gsi1` on gsi1pk/gsi1sk,
 * TTL on `ttl`).
 *
 * DynamoDB deletes expired items lazily (often days late), so expiry is also enforced here:
 * reads filter expired items out and every condition treats them as absent, matching SqliteStore.
 */
import {
  type AttributeValue,
  type CancellationReason,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  TransactionCanceledException,
  TransactionConflictException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
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

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

const GSI1 = 'gsi1';
/** Attempts for a write that loses a race with a transaction (the SDK does not retry these). */
const CONFLICT_ATTEMPTS = 6;
/** Attempts for an update that first has to clear away an expired item. */
const STALE_ATTEMPTS = 3;
const EMPTY_TRANSACT_UPDATE = 'An update inside a transaction must set, remove or add something';

export interface DynamoDbStoreOptions {
  tableName: string;
  /** Belongs to the caller, who destroys it; `close()` leaves it alone. */
  client: DynamoDBClient;
}

export class DynamoDbStore implements Store {
  readonly tableName: string;
  readonly client: DynamoDBClient;
  private readonly doc: DynamoDBDocumentClient;

  constructor({ tableName, client }: DynamoDbStoreOptions) {
    this.tableName = tableName;
    this.client = client;
    // `undefined` attributes are dropped, as JSON.stringify drops them in SqliteStore.
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async get(key: Key): Promise<Item | undefined> {
    const { Item: item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keyOf(key), ConsistentRead: true }),
    );
    return item && !isExpired(item.ttl) ? (item as Item) : undefined;
  }

  async put(item: Item, condition?: Condition): Promise<void> {
    const expr = new Expression();
    await this.conditional(keyOf(item), () =>
      this.doc.send(new PutCommand({ TableName: this.tableName, Item: item, ...expr.condition(condition) })),
    );
  }

  async update(key: Key, update: UpdateSpec): Promise<Item> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { Attributes } = await retryConflicts(() =>
          this.doc.send(
            new UpdateCommand({
              ...updateParams(this.tableName, key, update),
              ReturnValues: 'ALL_NEW',
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          ),
        );
        return Attributes as Item;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        const staleTtl = expiredTtl(error.Item);
        if (staleTtl === undefined || attempt >= STALE_ATTEMPTS) throw new ConditionFailedError(keyOf(key));
        await this.purgeExpired(key, staleTtl);
      }
    }
  }

  async delete(key: Key, condition?: Condition): Promise<Item | undefined> {
    const expr = new Expression();
    const { Attributes } = await this.conditional(keyOf(key), () =>
      this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keyOf(key),
          ReturnValues: 'ALL_OLD',
          ...expr.condition(condition),
        }),
      ),
    );
    return Attributes && !isExpired(Attributes.ttl) ? (Attributes as Item) : undefined;
  }

  async query(input: QueryInput): Promise<QueryPage> {
    const { limit } = input;
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      throw new RangeError(`query limit must be a positive integer, got ${limit}`);
    }
    const gsi = input.index === GSI1;
    const expr = new Expression();
    let keyCondition = `${expr.name(gsi ? 'gsi1pk' : 'pk')} = ${expr.value(input.pk)}`;
    if (input.skPrefix) {
      keyCondition += ` AND begins_with(${expr.name(gsi ? 'gsi1sk' : 'sk')}, ${expr.value(input.skPrefix)})`;
    }
    const filter = expr.live();

    const items: Item[] = [];
    let startKey = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    // `Limit` counts items read before the expiry filter, so keep reading until the page is full.
    // When a read returns exactly what was asked for, its LastEvaluatedKey is the last item kept.
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: gsi ? GSI1 : undefined,
          // GSIs only offer eventually consistent reads.
          ConsistentRead: !gsi,
          KeyConditionExpression: keyCondition,
          FilterExpression: filter,
          ...expr.attributes(),
          ScanIndexForward: !input.descending,
          ExclusiveStartKey: startKey,
          Limit: limit === undefined ? undefined : limit - items.length,
        }),
      );
      items.push(...((page.Items ?? []) as Item[]));
      startKey = page.LastEvaluatedKey;
    } while (startKey && (limit === undefined || items.length < limit));

    return startKey ? { items, cursor: encodeCursor(startKey) } : { items };
  }

  async transact(ops: TransactOp[]): Promise<void> {
    if (ops.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await retryConflicts(() =>
          this.doc.send(new TransactWriteCommand({ TransactItems: ops.map((op) => this.transactItem(op)) })),
        );
        return;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        const reasons = error.CancellationReasons ?? [];
        const failed = conditionFailures(reasons);
        if (failed.length === 0) throw error;
        // An update may have failed only because an expired item still sits at its key.
        const stale = failed.flatMap((index) => {
          const op = ops[index];
          const ttl = expiredTtl(reasons[index]?.Item);
          return op?.kind === 'update' && ttl !== undefined ? [{ key: op.key, ttl }] : [];
        });
        if (stale.length === 0 || attempt >= STALE_ATTEMPTS) throw new TransactionFailedError(failed);
        for (const { key, ttl } of stale) await this.purgeExpired(key, ttl);
      }
    }
  }

  async close(): Promise<void> {
    // Nothing to release: the client is injected and owned by the caller.
  }

  private transactItem(op: TransactOp): TransactItem {
    const TableName = this.tableName;
    const expr = new Expression();
    switch (op.kind) {
      case 'put':
        return { Put: { TableName, Item: op.item, ...expr.condition(op.condition) } };
      case 'update': {
        // TransactWriteItems requires an UpdateExpression (UpdateItem alone does not).
        const { UpdateExpression, ...params } = updateParams(TableName, op.key, op.update);
        if (UpdateExpression === undefined) throw new Error(EMPTY_TRANSACT_UPDATE);
        return { Update: { ...params, UpdateExpression, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } };
      }
      case 'delete':
        return { Delete: { TableName, Key: keyOf(op.key), ...expr.condition(op.condition) } };
      case 'check': {
        // ConditionCheck requires an expression; an empty condition always holds.
        const always = () => `attribute_exists(${expr.name('pk')}) OR attribute_not_exists(${expr.name('pk')})`;
        const ConditionExpression = join(expr.clauses(op.condition)) ?? always();
        return { ConditionCheck: { TableName, Key: keyOf(op.key), ConditionExpression, ...expr.attributes() } };
      }
    }
  }

  /** Runs a conditional single-item write, translating a failed condition to the port's error. */
  private async conditional<T>(key: Key, write: () => Promise<T>): Promise<T> {
    try {
      return await retryConflicts(write);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new ConditionFailedError(key);
      throw error;
    }
  }

  /** Deletes the item at `key` if it is still the expired one we saw (same ttl). */
  private async purgeExpired(key: Key, ttl: number): Promise<void> {
    const expr = new Expression();
    const condition = `${expr.name('ttl')} = ${expr.value(ttl)}`;
    try {
      await retryConflicts(() =>
        this.doc.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: keyOf(key),
            ConditionExpression: condition,
            ...expr.attributes(),
          }),
        ),
      );
    } catch (error) {
      // Someone else replaced or removed it meanwhile: either way it is gone.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
}

/**
 * Creates the single table (on-demand billing, TTL on `ttl`) unless it exists. Safe to race:
 * a concurrent creator's table is waited for instead.
 */
export async function createTableIfMissing(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  let created = true;
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: ['pk', 'sk', 'gsi1pk', 'gsi1sk'].map((name) => ({
          AttributeName: name,
          AttributeType: 'S' as const,
        })),
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: GSI1,
            KeySchema: [
              { AttributeName: 'gsi1pk', KeyType: 'HASH' },
              { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
    created = false;
  }
  await waitUntilTableExists({ client, maxWaitTime: 300 }, { TableName: tableName });
  if (created) {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      }),
    );
  }
}

/**
 * Collects ExpressionAttributeNames/Values so that no attribute name (many are reserved words,
 * `ttl` among them) or value is ever written into an expression.
 */
class Expression {
  private readonly names: Record<string, string> = {};
  private readonly values: Record<string, unknown> = {};
  private readonly placeholders = new Map<string, string>();
  private valueCount = 0;
  private readonly now = Date.now() / 1000;

  name(attribute: string): string {
    let placeholder = this.placeholders.get(attribute);
    if (!placeholder) {
      placeholder = `#n${this.placeholders.size}`;
      this.placeholders.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  value(value: unknown): string {
    const placeholder = `:v${this.valueCount++}`;
    this.values[placeholder] = value;
    return placeholder;
  }

  /** True for a stored item whose ttl has passed (false when absent: comparisons with nothing fail). */
  expired(): string {
    return `${this.name('ttl')} < ${this.value(this.now)}`;
  }

  /** True where no expired item is stored: a live item or none at all. */
  live(): string {
    return `NOT (${this.expired()})`;
  }

  /** The clauses of a port Condition, each judged as if expired items were absent. */
  clauses(condition: Condition | undefined): string[] {
    if (!condition) return [];
    const clauses: string[] = [];
    const equals = Object.entries(condition.equals ?? {});
    const oneOf = Object.entries(condition.oneOf ?? {});
    const absent = condition.absent ?? [];
    if (condition.exists === false) {
      clauses.push(`attribute_not_exists(${this.name('pk')}) OR ${this.expired()}`);
    }
    if (condition.exists === true || equals.length > 0 || oneOf.length > 0 || absent.length > 0) {
      clauses.push(`attribute_exists(${this.name('pk')})`, this.live());
    }
    for (const name of absent) clauses.push(`attribute_not_exists(${this.name(name)})`);
    for (const [name, value] of equals) clauses.push(`${this.name(name)} = ${this.value(value)}`);
    for (const [name, values] of oneOf) {
      clauses.push(
        values.length === 0
          ? `attribute_not_exists(${this.name('pk')}) AND attribute_exists(${this.name('pk')})` // never holds
          : `${this.name(name)} IN (${values.map((value) => this.value(value)).join(', ')})`,
      );
    }
    return clauses;
  }

  /** ConditionExpression plus placeholders, or nothing when there is no condition. */
  condition(condition: Condition | undefined) {
    const expression = join(this.clauses(condition));
    return expression === undefined ? this.attributes() : { ConditionExpression: expression, ...this.attributes() };
  }

  /** The placeholder maps, leaving out empty ones (DynamoDB rejects those). */
  attributes() {
    return {
      ...(this.placeholders.size > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(this.valueCount > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

function updateParams(tableName: string, key: Key, update: UpdateSpec) {
  const expr = new Expression();
  const set: string[] = [];
  const remove: string[] = [];
  for (const [name, value] of Object.entries(update.set ?? {})) {
    // Setting `undefined` drops the attribute, as JSON.stringify does in SqliteStore.
    if (value === undefined) remove.push(expr.name(name));
    else set.push(`${expr.name(name)} = ${expr.value(value)}`);
  }
  remove.push(...(update.remove ?? []).map((name) => expr.name(name)));
  const add = Object.entries(update.add ?? {}).map(([name, delta]) => `${expr.name(name)} ${expr.value(delta)}`);
  const actions = [
    set.length > 0 ? `SET ${set.join(', ')}` : '',
    remove.length > 0 ? `REMOVE ${remove.join(', ')}` : '',
    add.length > 0 ? `ADD ${add.join(', ')}` : '',
  ].filter(Boolean);

  // An expired item must not lend its attributes to the update: refuse to update it; the caller
  // deletes it and retries, so the update starts from nothing as SqliteStore's does.
  const clauses = [expr.live(), ...expr.clauses(update.condition)];
  if (update.upsert === false) clauses.push(`attribute_exists(${expr.name('pk')})`);

  return {
    TableName: tableName,
    Key: keyOf(key),
    UpdateExpression: actions.length > 0 ? actions.join(' ') : undefined,
    ConditionExpression: join(clauses),
    ...expr.attributes(),
  };
}

/** ANDs clauses; DynamoDB rejects redundant parentheses, so a lone clause goes bare. */
function join(clauses: string[]): string | undefined {
  if (clauses.length <= 1) return clauses[0];
  return clauses.map((clause) => `(${clause})`).join(' AND ');
}

function keyOf(key: Key): Key {
  return { pk: key.pk, sk: key.sk };
}

function isExpired(ttl: unknown): boolean {
  return typeof ttl === 'number' && ttl < Date.now() / 1000;
}

/** The ttl of an expired item returned (unmarshalled) with a failed condition, else undefined. */
function expiredTtl(item: Record<string, AttributeValue> | undefined): number | undefined {
  const raw = item?.ttl?.N;
  const ttl = raw === undefined ? undefined : Number(raw);
  return isExpired(ttl) ? ttl : undefined;
}

function conditionFailures(reasons: CancellationReason[]): number[] {
  return reasons.flatMap((reason, index) => (reason.Code === 'ConditionalCheckFailed' ? [index] : []));
}

/**
 * Retries writes that lost a race with a concurrent transaction. Those carry no verdict on the
 * caller's condition, and the SDK's own retry strategy does not treat them as retryable.
 */
async function retryConflicts<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isConflict(error) || attempt >= CONFLICT_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 2 ** attempt * 10 * (0.5 + Math.random())));
    }
  }
}

function isConflict(error: unknown): boolean {
  if (error instanceof TransactionConflictException) return true;
  if (!(error instanceof TransactionCanceledException)) return false;
  const codes = (error.CancellationReasons ?? []).map((reason) => reason.Code);
  return (
    !codes.includes('ConditionalCheckFailed') &&
    codes.some((code) => code === 'TransactionConflict' || code === 'ThrottlingError')
  );
}

/** The cursor is DynamoDB's LastEvaluatedKey (string attributes only), as base64url JSON. */
function encodeCursor(lastKey: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(lastKey)).toString('base64url');
}

function decodeCursor(cursor: string): Record<string, string> {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    // reported below
  }
  const valid =
    typeof key === 'object' && key !== null && Object.values(key).every((value) => typeof value === 'string');
  if (!valid) throw new Error('Invalid query cursor');
  return key as Record<string, string>;
}

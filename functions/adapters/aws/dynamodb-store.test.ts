/**
 * DynamoDbStore error paths that DynamoDB Local never produces on its own (it serialises
 * requests, so transactions never conflict): failures are injected into the client's middleware.
 * Everything else about the adapter is covered by the Store contract (test/contract).
 */
import {
  TransactionCanceledException,
  TransactionConflictException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoDbStore } from '#adapters/aws/dynamodb-store.ts';
import { TransactionFailedError } from '#ports/store.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';

const injected: { client: DynamoDBClient; name: string }[] = [];
afterEach(() => {
  for (const { client, name } of injected.splice(0)) client.middlewareStack.remove(name);
});

/** Makes the next `times` requests of the named operation fail with `error()`, until the test ends. */
function failNext(client: DynamoDBClient, operation: string, times: number, error: () => Error): { calls: number } {
  const seen = { calls: 0 };
  let remaining = times;
  const name = `fail-${operation}-${injected.length}`;
  injected.push({ client, name });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== `${operation}Command`) return next(args);
      seen.calls++;
      if (remaining-- > 0) throw error();
      return next(args);
    },
    { step: 'initialize', name },
  );
  return seen;
}

const conflict = () =>
  new TransactionCanceledException({
    message: 'Transaction cancelled',
    $metadata: {},
    CancellationReasons: [{ Code: 'TransactionConflict' }, { Code: 'None' }],
  });

describe('DynamoDbStore conflict handling', () => {
  let store: DynamoDbStore;
  beforeAll(async () => {
    store = await createDynamoTestStore();
  });
  afterAll(async () => {
    await store.close();
  });

  const ops = (pk: string) => [
    { kind: 'put' as const, item: { pk, sk: 'a' }, condition: { exists: false } },
    { kind: 'update' as const, key: { pk, sk: 'b' }, update: { add: { n: 1 } } },
  ];

  it('retries a transaction cancelled by a conflict, then commits it', async () => {
    const seen = failNext(store.client, 'TransactWriteItems', 2, conflict);
    await store.transact(ops('retried'));
    expect(seen.calls).toBe(3);
    expect(await store.get({ pk: 'retried', sk: 'b' })).toMatchObject({ n: 1 });
  });

  it('surfaces the raw cancellation when conflicts persist', async () => {
    failNext(store.client, 'TransactWriteItems', 100, conflict);
    const error = await store.transact(ops('stuck')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionCanceledException);
    expect(error).not.toBeInstanceOf(TransactionFailedError);
    expect(await store.get({ pk: 'stuck', sk: 'a' })).toBeUndefined();
  });

  it('retries a single write that conflicted with a transaction', async () => {
    const seen = failNext(
      store.client,
      'UpdateItem',
      1,
      () => new TransactionConflictException({ message: 'conflict', $metadata: {} }),
    );
    expect(await store.update({ pk: 'single', sk: 'x' }, { add: { n: 1 } })).toMatchObject({ n: 1 });
    expect(seen.calls).toBe(2);
  });
});

/**
 * DynamoDB Local for tests: clients for the run's shared instance (see global-setup.ts) and a
 * store on a fresh, uniquely named table so that test files running in parallel never meet.
 */
import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import { createTableIfMissing, DynamoDbStore } from '#adapters/aws/dynamodb-store.ts';

export function dynamoTestClient(): DynamoDBClient {
  return new DynamoDBClient({
    endpoint: inject('dynamoEndpoint'),
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/** A store on a new table; its `close()` drops the table and the client. */
export async function createDynamoTestStore(): Promise<DynamoDbStore> {
  const client = dynamoTestClient();
  const tableName = `test-${randomUUID()}`;
  await createTableIfMissing(client, tableName);
  return new TestTableStore({ tableName, client });
}

class TestTableStore extends DynamoDbStore {
  override async close(): Promise<void> {
    try {
      await this.client.send(new DeleteTableCommand({ TableName: this.tableName }));
    } finally {
      this.client.destroy();
    }
  }
}

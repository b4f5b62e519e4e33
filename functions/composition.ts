import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { z } from 'zod';
import { DynamoDbStore } from '#adapters/aws/dynamodb-store.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { createServices, type Services } from '#core/services.ts';
import { systemClock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';

/** Base models served unless the deployment names its own (`BAKEHOUSE_BASE_MODELS`). */
export const DEFAULT_BASE_MODELS = [
  'bakehouse/toy-instruct',
  'Qwen/Qwen3-0.6B',
  'Qwen/Qwen3-1.7B',
  'Qwen/Qwen3-4B',
  'Qwen/Qwen3-8B',
  'Qwen/Qwen3-14B',
  'Qwen/Qwen3-32B',
];

const modelList = z
  .string()
  .optional()
  .transform((value) => (value ? value.split(',').map((name) => name.trim()).filter(Boolean) : DEFAULT_BASE_MODELS));

export const RuntimeConfig = z.discriminatedUnion('store', [
  z.object({ store: z.literal('sqlite'), sqlitePath: z.string().min(1), baseModels: modelList }),
  z.object({
    store: z.literal('dynamodb'),
    tableName: z.string().min(1),
    dynamoEndpoint: z.string().url().optional(),
    baseModels: modelList,
  }),
]);
export type RuntimeConfig = z.input<typeof RuntimeConfig>;

export interface Runtime {
  services: Services;
  store: Store;
}

/** The one place that picks adapters, from validated configuration. */
export function compose(input: RuntimeConfig): Runtime {
  const config = RuntimeConfig.parse(input);
  const store =
    config.store === 'sqlite'
      ? new SqliteStore(config.sqlitePath)
      : new DynamoDbStore({
          tableName: config.tableName,
          client: new DynamoDBClient(config.dynamoEndpoint ? { endpoint: config.dynamoEndpoint } : {}),
        });
  return { store, services: createServices({ store, clock: systemClock, catalog: { baseModels: config.baseModels } }) };
}

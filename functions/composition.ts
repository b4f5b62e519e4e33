import { join } from 'node:path';
import { BatchClient } from '@aws-sdk/client-batch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { BatchCompute } from '#adapters/aws/batch-compute.ts';
import { DynamoDbStore } from '#adapters/aws/dynamodb-store.ts';
import { S3Blobs } from '#adapters/aws/s3-blobs.ts';
import { SqsDeliveryQueue } from '#adapters/aws/sqs-delivery-queue.ts';
import { SqsJobQueue } from '#adapters/aws/sqs-job-queue.ts';
import type { InProcessDeliveryQueue } from '#adapters/embedded/in-process-delivery-queue.ts';
import type { InProcessJobQueue } from '#adapters/embedded/in-process-job-queue.ts';
import type { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import type { LocalProcessCompute } from '#adapters/embedded/local-process-compute.ts';
import { resolveWithDns, sendWebhook } from '#adapters/webhook-transport.ts';
import { normaliseDatasetUriPrefixes } from '#core/dataset-uris.ts';
import { DEFAULT_BASE_MODELS, SPEC_DEFAULT_BASE_MODEL, TOY_MODEL } from '#core/models.ts';
import { createServices, type Services } from '#core/services.ts';
import { systemClock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';

/**
 * The one place that picks adapters, from validated configuration.
 *
 * There is one function per runtime so that a bundle for one runtime carries only its own
 * adapters. The Lambda entries call `composeAws` and never reach the embedded adapters (the SQLite
 * one is a native module that cannot ship in a Lambda bundle): `composeEmbedded` loads them with
 * dynamic imports inside its body, which esbuild drops together with the function from any
 * bundle that does not call it (test/cdk checks the bundle).
 */

/** How long a sampler waits for requests before it stops (`BAKEHOUSE_SAMPLER_IDLE_SECONDS`); unset, the domain's default. */
const samplerIdleSeconds = z.coerce.number().int().min(1).optional();
/** The most tokens a sampling request without `max_tokens` generates (`BAKEHOUSE_SAMPLER_MAX_TOKENS`); unset, the domain's default. */
const samplerMaxTokens = z.coerce.number().int().min(1).optional();
/** Requests that may wait for one base model's sampler before more are refused (`BAKEHOUSE_SAMPLER_MAX_QUEUED`); unset, the domain's default. */
const samplerMaxQueued = z.coerce.number().int().min(1).optional();

/**
 * The training data plane's public origin (`BAKEHOUSE_DATA_PLANE_URL`): Loops run and sampler base
 * URLs point there. On AWS it is its own load balancer; unset, the origin each request arrived at.
 */
const dataPlaneUrl = z.url({ protocol: /^https?$/ }).optional();

const modelList = z
  .string()
  .optional()
  .transform((value) => (value ? value.split(',').map((name) => name.trim()).filter(Boolean) : [...DEFAULT_BASE_MODELS]));

/** A repo created without a base model gets this one (`BAKEHOUSE_DEFAULT_BASE_MODEL`). */
const defaultBaseModel = z.string().min(1).optional();

/** A default outside the catalog would refuse every repo created without a base model: refuse to start instead. */
function defaultInCatalog(config: { baseModels: string[]; defaultBaseModel: string }, ctx: z.RefinementCtx) {
  if (config.baseModels.includes(config.defaultBaseModel)) return;
  ctx.addIssue({
    code: 'custom',
    path: ['defaultBaseModel'],
    message:
      `The default base model '${config.defaultBaseModel}' is not in the base model catalog (${config.baseModels.join(', ')}): ` +
      'set BAKEHOUSE_DEFAULT_BASE_MODEL to one of those, or add it to BAKEHOUSE_BASE_MODELS',
  });
}

/**
 * URI prefixes `from_dataset` generators may read besides shipped and uploaded datasets
 * (`BAKEHOUSE_DATASET_URI_PREFIXES`, comma-separated folders); none unless the operator names them.
 */
const datasetUriPrefixes = z
  .string()
  .optional()
  .transform((value) => (value ? value.split(',').map((prefix) => prefix.trim()).filter(Boolean) : []))
  .superRefine((prefixes, ctx) => {
    try {
      normaliseDatasetUriPrefixes(prefixes);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `BAKEHOUSE_DATASET_URI_PREFIXES: ${(error as Error).message}` });
    }
  });

/**
 * The GPU lanes bakes may run on (`BATCH_GPU_LANES`, JSON set by lib/tenant-stack.ts when the
 * tenant configures `gpuLanes`), the default GPU queue first. Unset: every bake goes to the GPU queue.
 */
const gpuLanes = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (!value) return undefined;
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'BATCH_GPU_LANES must be JSON' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(
        z
          .object({
            name: z.string().min(1),
            queue: z.string().min(1),
            definition: z.string().min(1),
            multiNodeDefinition: z.string().min(1).optional(),
            gpusPerNode: z.int().min(1),
            gpuMemoryGiB: z.number().positive(),
            maxNodes: z.int().min(1),
          })
          .refine((lane) => lane.maxNodes === 1 || lane.multiNodeDefinition, 'a lane of several nodes needs its multiNodeDefinition'),
      )
      .min(1)
      .optional(),
  );

/**
 * `BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1` lets webhooks reach private, link-local and metadata
 * addresses (functions/core/webhooks/ssrf.ts); `BAKEHOUSE_WEBHOOK_ALLOW_HTTP=1` lets them use plain
 * http on AWS. Both are off unless the operator turns them on.
 */
const flag = (name: string) =>
  z
    .string()
    .optional()
    .refine((value) => value === undefined || ['', '0', '1'].includes(value), `${name} must be 1 (on) or 0 (off)`)
    .transform((value) => value === '1');

/** A runtime's configuration was refused; the message names each bad setting. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function parseConfig<Schema extends z.ZodType>(schema: Schema, input: unknown): z.output<Schema> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ConfigError(`Invalid configuration:\n${z.prettifyError(result.error)}`);
  return result.data;
}

export const AwsConfig = z.object({
  tableName: z.string().min(1),
  artifactBucket: z.string().min(1),
  jobQueueUrl: z.string().url(),
  deliveryQueueUrl: z.string().url(),
  webhookAllowPrivate: flag('BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE'),
  webhookAllowHttp: flag('BAKEHOUSE_WEBHOOK_ALLOW_HTTP'),
  batch: z.object({
    gpuQueue: z.string().min(1),
    cpuQueue: z.string().min(1),
    gpuJobDefinition: z.string().min(1),
    cpuJobDefinition: z.string().min(1),
    gpuLanes,
  }),
  baseModels: modelList,
  defaultBaseModel: defaultBaseModel.default(SPEC_DEFAULT_BASE_MODEL),
  samplerIdleSeconds,
  samplerMaxTokens,
  samplerMaxQueued,
  datasetUriPrefixes,
  dataPlaneUrl,
}).superRefine(defaultInCatalog);
export type AwsConfig = z.input<typeof AwsConfig>;

/** The AWS runtime's configuration from the Lambda environment the stack sets (lib/constructs). */
export function awsConfigFromEnv(env: NodeJS.ProcessEnv): AwsConfig {
  return {
    tableName: env.TABLE_NAME ?? '',
    artifactBucket: env.ARTIFACT_BUCKET ?? '',
    jobQueueUrl: env.JOB_QUEUE_URL ?? '',
    deliveryQueueUrl: env.WEBHOOK_DELIVERY_QUEUE_URL ?? '',
    webhookAllowPrivate: env.BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE,
    webhookAllowHttp: env.BAKEHOUSE_WEBHOOK_ALLOW_HTTP,
    batch: {
      gpuQueue: env.BATCH_GPU_QUEUE ?? '',
      cpuQueue: env.BATCH_CPU_QUEUE ?? '',
      gpuJobDefinition: env.BATCH_GPU_JOB_DEFINITION ?? '',
      cpuJobDefinition: env.BATCH_CPU_JOB_DEFINITION ?? '',
      gpuLanes: env.BATCH_GPU_LANES || undefined,
    },
    baseModels: env.BAKEHOUSE_BASE_MODELS,
    defaultBaseModel: env.BAKEHOUSE_DEFAULT_BASE_MODEL || undefined,
    samplerIdleSeconds: env.BAKEHOUSE_SAMPLER_IDLE_SECONDS || undefined,
    samplerMaxTokens: env.BAKEHOUSE_SAMPLER_MAX_TOKENS || undefined,
    samplerMaxQueued: env.BAKEHOUSE_SAMPLER_MAX_QUEUED || undefined,
    datasetUriPrefixes: env.BAKEHOUSE_DATASET_URI_PREFIXES,
    dataPlaneUrl: env.BAKEHOUSE_DATA_PLANE_URL || undefined,
  };
}

function samplerSettings(config: { samplerIdleSeconds?: number | undefined; samplerMaxTokens?: number | undefined }) {
  return {
    ...(config.samplerIdleSeconds === undefined ? {} : { idleTimeoutS: config.samplerIdleSeconds }),
    ...(config.samplerMaxTokens === undefined ? {} : { maxUnsetTokens: config.samplerMaxTokens }),
  };
}

export interface Runtime {
  services: Services;
  store: Store;
  /** Where Loops clients reach the training data plane, when it is not where they reach the API. */
  dataPlaneUrl?: string;
}

/** AWS: DynamoDB, S3, SQS and Batch, with the SDK's own retries. */
export function composeAws(input: AwsConfig): Runtime {
  const config = parseConfig(AwsConfig, input);
  const store = new DynamoDbStore({ tableName: config.tableName, client: new DynamoDBClient({}) });
  const sqs = new SQSClient({});
  const services = createServices({
    store,
    blobs: new S3Blobs({ client: new S3Client({}), bucket: config.artifactBucket }),
    queue: new SqsJobQueue({ client: sqs, queueUrl: config.jobQueueUrl }),
    compute: new BatchCompute({
      client: new BatchClient({}),
      queues: { gpu: config.batch.gpuQueue, cpu: config.batch.cpuQueue },
      definitions: { gpu: config.batch.gpuJobDefinition, cpu: config.batch.cpuJobDefinition },
      ...(config.batch.gpuLanes ? { gpuLanes: config.batch.gpuLanes } : {}),
    }),
    clock: systemClock,
    catalog: { baseModels: config.baseModels, defaultBaseModel: config.defaultBaseModel },
    sampler: samplerSettings(config),
    samplerMaxQueued: config.samplerMaxQueued,
    datasetUriPrefixes: config.datasetUriPrefixes,
    webhookDelivery: {
      queue: new SqsDeliveryQueue({ client: sqs, queueUrl: config.deliveryQueueUrl }),
      resolve: resolveWithDns,
      send: sendWebhook,
      policy: { allowHttp: config.webhookAllowHttp, allowLoopback: false, allowPrivate: config.webhookAllowPrivate },
    },
  });
  return { store, services, dataPlaneUrl: config.dataPlaneUrl };
}

export const EmbeddedConfig = z.object({
  dataDir: z.string().min(1),
  /** The local app's origin: signed blob URLs point at it. */
  baseUrl: z.string().url(),
  /** The engine command line; `run <spec>` is appended. */
  engineCommand: z.array(z.string()).min(1),
  engineConcurrency: z.number().int().min(1),
  /** Secret for signed blob URLs (at least 16 characters). */
  signingKey: z.string().min(16),
  baseModels: modelList,
  defaultBaseModel,
  /**
   * Whether the engine may download base models from the hub (`BAKEHOUSE_HUB_ACCESS`). Without it
   * the default base model is the toy model, the one a fresh machine can run; with it, the spec's.
   */
  hubAccess: z.boolean().default(false),
  samplerIdleSeconds,
  samplerMaxTokens,
  samplerMaxQueued,
  datasetUriPrefixes,
  /** Webhooks may reach private addresses; loopback and plain http are always allowed here, for local tools. */
  webhookAllowPrivate: z.boolean().default(false),
  /** Webhook deliveries running at once (`BAKEHOUSE_WEBHOOK_CONCURRENCY`); the rest wait, so delivery never crowds out the job flow. */
  webhookConcurrency: z.coerce.number().int().min(1).optional(),
})
  .transform(({ hubAccess, ...config }) => ({
    ...config,
    defaultBaseModel: config.defaultBaseModel ?? (hubAccess ? SPEC_DEFAULT_BASE_MODEL : TOY_MODEL),
  }))
  .superRefine(defaultInCatalog);
export type EmbeddedConfig = z.input<typeof EmbeddedConfig>;

export interface EmbeddedRuntime extends Runtime {
  blobs: LocalBlobs;
  queue: InProcessJobQueue;
  deliveryQueue: InProcessDeliveryQueue;
  compute: LocalProcessCompute;
  close(): Promise<void>;
}

/** How long the embedded start waits for the database's integrity check. */
const INTEGRITY_CHECK_WAIT_MS = 10_000;

/** The embedded runtime's SQLite file in its data dir (`npm run backup` copies it). */
export function embeddedDatabaseFile(dataDir: string): string {
  return join(dataDir, 'bakehouse.db');
}

/** One machine, no AWS account: SQLite, a blob directory, the in-process queue, local engines. */
export async function composeEmbedded(input: EmbeddedConfig): Promise<EmbeddedRuntime> {
  const config = parseConfig(EmbeddedConfig, input);
  const [{ SqliteStore }, { LocalBlobs }, { InProcessJobQueue }, { LocalProcessCompute }, { InProcessDeliveryQueue }] = await Promise.all([
    import('#adapters/embedded/sqlite-store.ts'),
    import('#adapters/embedded/local-blobs.ts'),
    import('#adapters/embedded/in-process-job-queue.ts'),
    import('#adapters/embedded/local-process-compute.ts'),
    import('#adapters/embedded/in-process-delivery-queue.ts'),
  ]);
  const store = new SqliteStore(embeddedDatabaseFile(config.dataDir));
  // A damaged file stops the start with the file named, rather than failing requests later. A
  // file too large to check in that time (on a slow disk) is served while the check finishes;
  // damage it finds then stops the store, and every request gets 503.
  try {
    await store.checkIntegrity(INTEGRITY_CHECK_WAIT_MS);
  } catch (error) {
    await store.close();
    throw error;
  }
  const blobs = new LocalBlobs({ root: join(config.dataDir, 'blobs'), baseUrl: config.baseUrl, signingKey: config.signingKey });
  const queue = new InProcessJobQueue();
  const deliveryQueue = new InProcessDeliveryQueue({ concurrency: config.webhookConcurrency });
  // Compute reports to the pipeline, which is built over compute; events only come after both exist.
  const compute = new LocalProcessCompute({
    stateDir: join(config.dataDir, 'compute'),
    engineCommand: config.engineCommand,
    concurrency: config.engineConcurrency,
    onEvent: async (event) => void (await services.pipeline.applyEvent(event)),
  });
  const services = createServices({
    store,
    blobs,
    queue,
    compute,
    clock: systemClock,
    catalog: { baseModels: config.baseModels, defaultBaseModel: config.defaultBaseModel },
    sampler: samplerSettings(config),
    samplerMaxQueued: config.samplerMaxQueued,
    datasetUriPrefixes: config.datasetUriPrefixes,
    webhookDelivery: {
      queue: deliveryQueue,
      resolve: resolveWithDns,
      send: sendWebhook,
      policy: { allowHttp: true, allowLoopback: true, allowPrivate: config.webhookAllowPrivate },
    },
  });
  return {
    store,
    services,
    blobs,
    queue,
    deliveryQueue,
    compute,
    close: async () => {
      await deliveryQueue.close();
      await queue.close();
      await compute.close();
      await store.close();
    },
  };
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BASE_MODELS } from '#core/models.ts';
import { awsConfigFromEnv, AwsConfig, composeAws, composeEmbedded, ConfigError, type EmbeddedConfig, type EmbeddedRuntime } from './composition.ts';

/** The environment the stack gives the AWS runtime, with only what it requires. */
const AWS_STACK_ENV = {
  TABLE_NAME: 't',
  ARTIFACT_BUCKET: 'b',
  JOB_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs',
  WEBHOOK_DELIVERY_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/webhook-deliveries',
  BATCH_GPU_QUEUE: 'g',
  BATCH_CPU_QUEUE: 'c',
  BATCH_GPU_JOB_DEFINITION: 'gd',
  BATCH_CPU_JOB_DEFINITION: 'cd',
};

describe('composition', () => {
  const opened: { runtime: EmbeddedRuntime; dir: string }[] = [];
  afterEach(async () => {
    for (const { runtime, dir } of opened.splice(0)) {
      await runtime.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function embedded(samplerIdleSeconds?: string, settings: Partial<EmbeddedConfig> = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'bakehouse-composition-'));
    const runtime = await composeEmbedded({
      dataDir: dir,
      baseUrl: 'http://127.0.0.1:9',
      engineCommand: ['false'],
      engineConcurrency: 1,
      signingKey: 'composition-test-signing-key',
      samplerIdleSeconds,
      ...settings,
    }).catch((error: unknown) => {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    });
    opened.push({ runtime, dir });
    return runtime;
  }

  /** The idle timeout in the spec of the sampler a first chat request would start. */
  async function samplerIdleTimeout(runtime: EmbeddedRuntime): Promise<number> {
    const job = await runtime.services.samplers.ensure('bakehouse/toy-instruct', 'http://127.0.0.1:9');
    const spec = JSON.parse(Buffer.from((await runtime.blobs.get(`jobs/${job.job_id}/spec.json`))!).toString('utf8'));
    return spec.sampler.idle_timeout_s as number;
  }

  it('gives samplers the configured idle time, or the default', async () => {
    expect(await samplerIdleTimeout(await embedded('42'))).toBe(42);
    expect(await samplerIdleTimeout(await embedded())).toBe(600);
  });

  it('refuses an idle time that is not a positive whole number of seconds', async () => {
    await expect(embedded('soon')).rejects.toThrow(/samplerIdleSeconds/);
    await expect(embedded('0')).rejects.toThrow(/samplerIdleSeconds/);
  });

  /** The base model a repo created without one gets. */
  async function defaultBaseModel(runtime: EmbeddedRuntime): Promise<string> {
    const { repo } = await runtime.services.repos.create({ userId: 'alice', isAdmin: false }, { repo_name: 'r' });
    return repo.base_model;
  }

  it('gives repos created without a base model the toy model, the spec default with hub access, or the configured one', async () => {
    expect(await defaultBaseModel(await embedded())).toBe('bakehouse/toy-instruct');
    expect(await defaultBaseModel(await embedded(undefined, { hubAccess: true }))).toBe('Qwen/Qwen3-32B');
    expect(await defaultBaseModel(await embedded(undefined, { defaultBaseModel: 'Qwen/Qwen3-8B', hubAccess: true }))).toBe('Qwen/Qwen3-8B');
    expect(await defaultBaseModel(await embedded(undefined, { baseModels: 'org/a, org/b', defaultBaseModel: 'org/b' }))).toBe('org/b');
  });

  it('refuses to start with a default base model outside the catalog, naming both settings', async () => {
    const refused = embedded(undefined, { baseModels: 'Qwen/Qwen3-8B', defaultBaseModel: 'Qwen/Qwen3-14B' });
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(
      "The default base model 'Qwen/Qwen3-14B' is not in the base model catalog (Qwen/Qwen3-8B): " +
        'set BAKEHOUSE_DEFAULT_BASE_MODEL to one of those, or add it to BAKEHOUSE_BASE_MODELS',
    );
    // A catalog without the toy model needs a default of its own.
    await expect(embedded(undefined, { baseModels: 'Qwen/Qwen3-8B' })).rejects.toThrow(/default base model 'bakehouse\/toy-instruct' is not in/);
  });

  it('lets targets read dataset URIs under the configured prefixes only, and refuses a prefix that is not a folder', async () => {
    const runtime = await embedded(undefined, { datasetUriPrefixes: ' file:///srv/datasets , s3://shared-datasets/q/' });
    const generators = [{ type: 'from_dataset' as const, dataset: 'file:///srv/datasets/team/q.jsonl', numq: 1 }];
    expect(runtime.services.datasets.references({ userId: 'alice', isAdmin: false }, generators)).toEqual([]);
    expect(() => runtime.services.datasets.references({ userId: 'alice', isAdmin: false }, [{ ...generators[0]!, dataset: 'file:///srv/other/q.jsonl' }])).toThrow(
      /dataset URI is not allowed/,
    );
    for (const prefix of ['file:///', 'https://example.com/data/', 'file:///srv/../etc/']) {
      await expect(embedded(undefined, { datasetUriPrefixes: prefix })).rejects.toThrow(/BAKEHOUSE_DATASET_URI_PREFIXES: Dataset URI prefix/);
    }
  });

  it('runs the configured number of webhook deliveries at once, 8 by default, and refuses a count that is not a positive whole number', async () => {
    expect((await embedded(undefined, { webhookConcurrency: '3' })).deliveryQueue.concurrency).toBe(3);
    expect((await embedded()).deliveryQueue.concurrency).toBe(8);
    await expect(embedded(undefined, { webhookConcurrency: '0' })).rejects.toThrow(/webhookConcurrency/);
    await expect(embedded(undefined, { webhookConcurrency: 'many' })).rejects.toThrow(/webhookConcurrency/);
  });

  it('reads the AWS runtime settings from the environment the stack sets', () => {
    expect(AwsConfig.parse(awsConfigFromEnv(AWS_STACK_ENV))).toMatchObject({
      baseModels: DEFAULT_BASE_MODELS,
      defaultBaseModel: 'Qwen/Qwen3-32B',
      samplerIdleSeconds: undefined,
      datasetUriPrefixes: [],
      webhookAllowPrivate: false,
      webhookAllowHttp: false,
    });
    expect(AwsConfig.parse(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE: '1', BAKEHOUSE_WEBHOOK_ALLOW_HTTP: '1' }))).toMatchObject({
      webhookAllowPrivate: true,
      webhookAllowHttp: true,
    });
    expect(() => composeAws(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE: 'yes' }))).toThrow(/BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE must be 1 \(on\) or 0 \(off\)/);
    expect(AwsConfig.parse(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_DATASET_URI_PREFIXES: 's3://data/a/,s3://data/b/' })).datasetUriPrefixes).toEqual(['s3://data/a/', 's3://data/b/']);
    expect(AwsConfig.parse(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_DEFAULT_BASE_MODEL: 'Qwen/Qwen3-8B' }))).toMatchObject({ defaultBaseModel: 'Qwen/Qwen3-8B' });
    expect(() => composeAws(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_BASE_MODELS: 'a, b', BAKEHOUSE_DEFAULT_BASE_MODEL: 'c' }))).toThrow(
      /default base model 'c' is not in the base model catalog \(a, b\)/,
    );
    expect(AwsConfig.parse(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_SAMPLER_IDLE_SECONDS: '180', BAKEHOUSE_BASE_MODELS: 'a, b', BAKEHOUSE_DEFAULT_BASE_MODEL: 'b' }))).toMatchObject({
      baseModels: ['a', 'b'],
      defaultBaseModel: 'b',
      samplerIdleSeconds: 180,
    });
  });

  it('gives the AWS runtime the data plane origin the stack sets, and refuses one that is not an http(s) URL', () => {
    expect(composeAws(awsConfigFromEnv(AWS_STACK_ENV)).dataPlaneUrl).toBeUndefined();
    expect(composeAws(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_DATA_PLANE_URL: 'https://data.example.com' })).dataPlaneUrl).toBe('https://data.example.com');
    expect(() => composeAws(awsConfigFromEnv({ ...AWS_STACK_ENV, BAKEHOUSE_DATA_PLANE_URL: 'data.example.com' }))).toThrow(/dataPlaneUrl/);
  });
});

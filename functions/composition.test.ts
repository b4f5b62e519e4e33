import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { awsConfigFromEnv, AwsConfig, composeEmbedded, DEFAULT_BASE_MODELS, type EmbeddedRuntime } from './composition.ts';

describe('composition', () => {
  const opened: { runtime: EmbeddedRuntime; dir: string }[] = [];
  afterEach(async () => {
    for (const { runtime, dir } of opened.splice(0)) {
      await runtime.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function embedded(samplerIdleSeconds?: string) {
    const dir = mkdtempSync(join(tmpdir(), 'bakehouse-composition-'));
    const runtime = await composeEmbedded({
      dataDir: dir,
      baseUrl: 'http://127.0.0.1:9',
      engineCommand: ['false'],
      engineConcurrency: 1,
      signingKey: 'composition-test-signing-key',
      samplerIdleSeconds,
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

  it('reads the AWS runtime settings from the environment the stack sets', () => {
    const env = {
      TABLE_NAME: 't',
      ARTIFACT_BUCKET: 'b',
      JOB_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs',
      BATCH_GPU_QUEUE: 'g',
      BATCH_CPU_QUEUE: 'c',
      BATCH_GPU_JOB_DEFINITION: 'gd',
      BATCH_CPU_JOB_DEFINITION: 'cd',
    };
    expect(AwsConfig.parse(awsConfigFromEnv(env))).toMatchObject({ baseModels: DEFAULT_BASE_MODELS, samplerIdleSeconds: undefined });
    expect(AwsConfig.parse(awsConfigFromEnv({ ...env, BAKEHOUSE_SAMPLER_IDLE_SECONDS: '180', BAKEHOUSE_BASE_MODELS: 'a, b' }))).toMatchObject({
      baseModels: ['a', 'b'],
      samplerIdleSeconds: 180,
    });
  });
});

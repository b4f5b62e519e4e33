/**
 * BatchCompute with GPU lanes, against the fake Batch service: bakes go to the lane their
 * estimated memory fits, as multi-node parallel jobs when they need several nodes; other jobs
 * stay on the GPU and CPU queues.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchCompute, type BatchGpuLane } from '#adapters/aws/batch-compute.ts';
import { AwsConfig, awsConfigFromEnv } from '#functions/composition.ts';
import type { ComputeJob } from '#ports/compute.ts';
import type { JobSpec } from '#schemas/job-spec.ts';
import { FakeBatch } from '#test/support/fake-batch.ts';

const defaultLane: BatchGpuLane = { name: 'default', queue: 'gpu-queue', definition: 'gpu-def:1', gpusPerNode: 1, gpuMemoryGiB: 24, maxNodes: 1 };
const quad: BatchGpuLane = { name: 'quad', queue: 'quad-queue', definition: 'quad-def:1', gpusPerNode: 4, gpuMemoryGiB: 48, maxNodes: 1 };
const nodes: BatchGpuLane = {
  name: 'nodes',
  queue: 'nodes-queue',
  definition: 'nodes-def:1',
  multiNodeDefinition: 'nodes-mnp-def:1',
  gpusPerNode: 1,
  gpuMemoryGiB: 48,
  maxNodes: 4,
};

function bake(jobId: number, baseModel: string): ComputeJob {
  const spec = {
    version: 1,
    job_id: jobId,
    output_uri: `s3://artifacts/jobs/${jobId}/`,
    kind: 'bake',
    bake: {
      config: {},
      datasets: [{ target: 't', weight: 1, rollout_output_uri: 's3://artifacts/jobs/1/output.jsonl' }],
      total_trajectories: 1,
      model: { base_model: baseModel, adapters: [] },
      model_name_prefix: 'u/r/b',
    },
  } satisfies JobSpec;
  return { jobId, kind: 'bake', specUri: `s3://artifacts/jobs/${jobId}/spec.json`, spec };
}

describe('BatchCompute with GPU lanes', () => {
  let fake: FakeBatch;
  beforeAll(async () => {
    fake = await FakeBatch.start({ queues: ['gpu-queue', 'cpu-queue', 'quad-queue', 'nodes-queue'] });
  });
  afterAll(() => fake?.stop());

  const computeWith = (gpuLanes: BatchGpuLane[]) =>
    new BatchCompute({
      client: fake.client(),
      queues: { gpu: 'gpu-queue', cpu: 'cpu-queue' },
      definitions: { gpu: 'gpu-def:1', cpu: 'cpu-def:1' },
      gpuLanes,
    });

  const common = (jobId: number) => ({ jobName: `bakehouse-bake-${jobId}`, tags: { 'bakehouse:job-id': String(jobId) }, propagateTags: true });

  it('submits a bake that fits one default GPU to the default GPU queue', async () => {
    const job = bake(11, 'bakehouse/toy-instruct');
    await computeWith([defaultLane, quad, nodes]).submit(job);
    expect(fake.requests.at(-1)!.body).toEqual({
      ...common(11),
      jobQueue: 'gpu-queue',
      jobDefinition: 'gpu-def:1',
      containerOverrides: { command: ['run', job.specUri] },
    });
  });

  it("submits a bake that needs a multi-GPU instance to that lane's single-node job definition", async () => {
    const job = bake(12, 'Qwen/Qwen3-14B');
    await computeWith([defaultLane, quad]).submit(job);
    expect(fake.requests.at(-1)!.body).toEqual({
      ...common(12),
      jobQueue: 'quad-queue',
      jobDefinition: 'quad-def:1',
      containerOverrides: { command: ['run', job.specUri] },
    });
  });

  it('submits a bake that needs several nodes as a multi-node parallel job of that many nodes, every node running the spec', async () => {
    const job = bake(13, 'Qwen/Qwen3-32B');
    const externalId = await computeWith([defaultLane, quad, nodes]).submit(job);
    expect(fake.jobs.get(externalId)).toBeDefined();
    expect(fake.requests.at(-1)!.body).toEqual({
      ...common(13),
      jobQueue: 'nodes-queue',
      jobDefinition: 'nodes-mnp-def:1',
      nodeOverrides: { numNodes: 2, nodePropertyOverrides: [{ targetNodes: '0:', containerOverrides: { command: ['run', job.specUri] } }] },
    });
  });

  it('keeps rollouts on the GPU queue whatever their model', async () => {
    const job: ComputeJob = { jobId: 14, kind: 'rollout', specUri: 's3://artifacts/jobs/14/spec.json', spec: {} as JobSpec };
    await computeWith([defaultLane, quad, nodes]).submit(job);
    expect(fake.requests.at(-1)!.body).toMatchObject({ jobQueue: 'gpu-queue', jobDefinition: 'gpu-def:1' });
  });
});

describe('BATCH_GPU_LANES', () => {
  const env = (lanes: string | undefined) => ({
    TABLE_NAME: 'items',
    ARTIFACT_BUCKET: 'artifacts',
    JOB_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/jobs',
    WEBHOOK_DELIVERY_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/webhooks',
    BATCH_GPU_QUEUE: 'gpu-queue',
    BATCH_CPU_QUEUE: 'cpu-queue',
    BATCH_GPU_JOB_DEFINITION: 'gpu-def:1',
    BATCH_CPU_JOB_DEFINITION: 'cpu-def:1',
    ...(lanes === undefined ? {} : { BATCH_GPU_LANES: lanes }),
  });

  it('reads the lanes the stack sets, and none when unset', () => {
    expect(AwsConfig.parse(awsConfigFromEnv(env(JSON.stringify([defaultLane, nodes])))).batch.gpuLanes).toEqual([defaultLane, nodes]);
    expect(AwsConfig.parse(awsConfigFromEnv(env(undefined))).batch.gpuLanes).toBeUndefined();
  });

  it.each([
    ['not JSON', 'BATCH_GPU_LANES must be JSON'],
    [JSON.stringify([{ ...nodes, multiNodeDefinition: undefined }]), 'a lane of several nodes needs its multiNodeDefinition'],
  ])('refuses %s', (value, message) => {
    const result = AwsConfig.safeParse(awsConfigFromEnv(env(value)));
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((issue) => issue.message)).toContain(message);
  });
});

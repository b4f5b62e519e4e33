/**
 * Tenant configuration: one entry per deployment (DESIGN.md §7), validated before any construct
 * is built so that a typo fails `cdk synth` with the field's path rather than deep inside CDK.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_BASE_MODELS, SPEC_DEFAULT_BASE_MODEL } from '../functions/core/models.ts';

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

const InstanceTypes = z
  .array(z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as g6e.xlarge'))
  .min(1, 'must name at least one instance type');
const PositiveInt = z.int('must be a positive integer').positive('must be a positive integer');
/** Memory of one engine job's container, in MiB. */
const JobMemoryMiB = z.int('must be a whole number of MiB').min(1024, 'must be at least 1024 MiB');
/** Memory of one GPU, in GiB: what the bake memory estimate (functions/core/jobs/bake-memory.ts) is compared with. */
const GpuMemoryGiB = z.number('must be a number of GiB').positive('must be a positive number of GiB');

/**
 * A lane for bakes that outgrow the default GPU environment: its own compute environment and job
 * queue (lib/constructs/gpu-lane.ts) with every GPU of an instance given to one job, and, when
 * `maxNodes` > 1, AWS Batch multi-node parallel jobs across instances in a cluster placement group.
 * The dispatcher sends each bake to the smallest lane its estimated memory fits.
 */
const GpuLane = z
  .strictObject({
    /** Names the lane's resources; unique among lanes. */
    name: z.string().regex(/^[a-z][a-z0-9]{0,15}$/, 'must be 1-16 lowercase letters or digits, starting with a letter'),
    /** EC2 instance types Batch may launch, all with `gpusPerNode` GPUs of `gpuMemoryGiB` each. */
    instanceTypes: InstanceTypes,
    gpusPerNode: z.int('must be a whole number of GPUs').min(1, 'must be at least 1').max(16, 'must be at most 16'),
    gpuMemoryGiB: GpuMemoryGiB,
    /** Nodes one bake may span: above 1, bakes that need them run as multi-node parallel jobs. */
    maxNodes: z.int('must be a whole number of nodes').min(1, 'must be at least 1').max(64, 'must be at most 64').default(1),
    /** Caps the environment, and so the bill: vCPUs across all running instances. */
    maxVcpus: PositiveInt,
    spot: z.boolean().default(false),
    /** What one job reserves on each node, besides all its GPUs: at most what the instance type offers. */
    jobVcpus: PositiveInt,
    jobMemoryMiB: JobMemoryMiB,
  })
  .refine((lane) => lane.jobVcpus * lane.maxNodes <= lane.maxVcpus, {
    message: 'jobVcpus × maxNodes must not exceed maxVcpus (a bake on maxNodes nodes must fit the environment)',
    path: ['maxVcpus'],
  });
export type GpuLaneConfig = z.output<typeof GpuLane>;

const DnsName = z.string().regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'must be a lowercase DNS name');
const AcmCertificateArn = z
  .string()
  .regex(/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/, 'must be an ACM certificate ARN');

/**
 * Fargate task sizes: for each CPU value, the memory (MiB) it may have, from `min` to `max` in
 * steps of `step` (Amazon ECS Developer Guide, "Task CPU and memory").
 */
const FARGATE_MEMORY: Record<number, { min: number; max: number; step: number }> = {
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16_384, step: 1024 },
  4096: { min: 8192, max: 30_720, step: 1024 },
  8192: { min: 16_384, max: 61_440, step: 4096 },
  16_384: { min: 32_768, max: 122_880, step: 8192 },
};
/** From half a vCPU: the smallest size (256) has too little memory to parse a 24 MiB body. */
const FARGATE_CPU_UNITS = [512, 1024, 2048, 4096, 8192, 16_384] as const;

function fargateMemoryFits(cpu: number, memoryMiB: number): boolean {
  const { min, max, step } = FARGATE_MEMORY[cpu]!;
  return memoryMiB >= min && memoryMiB <= max && (memoryMiB - min) % step === 0;
}

function fargateMemoryRange(cpu: number): string {
  const { min, max, step } = FARGATE_MEMORY[cpu]!;
  return `${min} to ${max} MiB in steps of ${step}`;
}

export const TenantConfig = z.strictObject({
  /** Names the stack (`Bakehouse-<tenantId>`) and tags every resource. */
  tenantId: z
    .string()
    .regex(
      /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/,
      'must be 1-32 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen',
    ),
  /** Omitted: the stack deploys to whichever account the CLI's credentials belong to. */
  account: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
    .optional(),
  region: z.string().regex(/^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'must be an AWS region such as us-east-1'),
  /** The GPU compute environment: rollouts and bakes (lib/constructs/batch-compute.ts). */
  gpu: z
    .strictObject({
      /** EC2 instance types Batch may launch; ECS_AL2023_NVIDIA AMIs do not support p3 or g3. */
      instanceTypes: InstanceTypes,
      /**
       * Memory of the one GPU a job gets here. Default 24 (g5's A10G), the smallest of the common
       * types: a bake estimated to need more goes to a larger `gpuLanes` entry when there is one.
       */
      gpuMemoryGiB: GpuMemoryGiB.default(24),
      /** Caps the environment, and so the bill: vCPUs across all running instances. */
      maxVcpus: PositiveInt,
      /** Spot capacity (reclaimed jobs are retried) instead of on-demand. */
      spot: z.boolean().default(false),
      /**
       * What one job reserves on an instance (it also gets one GPU). The defaults fit the smallest
       * common GPU instance (g5.xlarge: 4 vCPUs, 16 GiB, of which ECS keeps some): a job that asks
       * for more than any configured instance offers stays RUNNABLE forever.
       */
      jobVcpus: PositiveInt.default(4),
      jobMemoryMiB: JobMemoryMiB.default(14_336),
    })
    .refine((gpu) => gpu.jobVcpus <= gpu.maxVcpus, { message: 'must not exceed maxVcpus (one job runs on one instance)', path: ['jobVcpus'] }),
  /** Larger GPU lanes for bakes (multi-GPU instances, multi-node jobs); none by default. */
  gpuLanes: z
    .array(GpuLane)
    .max(8, 'must list at most 8 lanes')
    .superRefine((lanes, ctx) => {
      const seen = new Set<string>();
      lanes.forEach((lane, index) => {
        if (seen.has(lane.name)) ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicates lane '${lane.name}'` });
        seen.add(lane.name);
      });
    })
    .default([]),
  /** The CPU (Fargate) compute environment: stim jobs, which call LLM APIs and need no GPU. */
  cpu: z
    .strictObject({
      maxVcpus: PositiveInt.default(16),
    })
    .default({ maxVcpus: 16 }),
  /** Base models the API offers (`BAKEHOUSE_BASE_MODELS`). Default: functions/core/models.ts's list. */
  baseModels: z.array(z.string().min(1, 'must not be empty')).min(1, 'must name at least one model').optional(),
  /**
   * The base model of repos created without one (`BAKEHOUSE_DEFAULT_BASE_MODEL`); one of
   * `baseModels`. Default: Qwen/Qwen3-32B, as bread-api.md §3 says.
   */
  defaultBaseModel: z.string().min(1, 'must not be empty').optional(),
  /**
   * Minutes a chat sampler (a GPU Batch job) waits for requests before it stops
   * (`BAKEHOUSE_SAMPLER_IDLE_SECONDS`). Default: functions/core's 10 minutes. Shorter saves GPU
   * time; longer spares chat users the wait for a cold start.
   */
  samplerIdleMinutes: z.int('must be a whole number of minutes').min(1, 'must be at least 1').max(1440, 'must be at most 1440 (a day)').optional(),
  /**
   * Requests that may wait for one base model's sampler before new chat and sampling requests are
   * refused with a retry-after (`BAKEHOUSE_SAMPLER_MAX_QUEUED`). Default: functions/core's 256.
   */
  samplerMaxQueued: z.int('must be a whole number of requests').min(1, 'must be at least 1').optional(),
  /**
   * S3 folders whose JSONL/CSV files `from_dataset` generators may name by URI, besides shipped and
   * uploaded datasets (`BAKEHOUSE_DATASET_URI_PREFIXES`); the engine's job role may read them. None
   * by default: a target naming any other URI is refused.
   */
  datasetUriPrefixes: z
    .array(
      z
        .string()
        .regex(
          /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/(?:(?!\.\.?\/)[^/\s*?#%]+\/)*$/,
          'must be an S3 folder ending in / such as s3://bucket/datasets/ (no . or .. segments)',
        ),
    )
    .optional(),
  /**
   * A custom domain for the API, served by an API Gateway HTTP API in front of the function. The
   * certificate is a regional one, so it must be an ACM certificate in the tenant's region; DNS
   * (a CNAME to the `ApiDomainTarget` output) stays with the operator.
   */
  domain: z
    .strictObject({
      name: DnsName,
      certificateArn: AcmCertificateArn,
    })
    .optional(),
  /**
   * Outbound webhooks (functions/core/webhooks). By default they must use https and reach public
   * addresses only; `allowPrivateAddresses` lets them reach private, link-local and metadata
   * addresses (`BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE`), `allowHttp` plain http (`BAKEHOUSE_WEBHOOK_ALLOW_HTTP`).
   */
  webhooks: z
    .strictObject({ allowPrivateAddresses: z.boolean().default(false), allowHttp: z.boolean().default(false) })
    .default({ allowPrivateAddresses: false, allowHttp: false }),
  /**
   * The training data plane (lib/constructs/data-plane.ts): the same app on ECS Fargate behind an
   * Application Load Balancer, for the Loops routes whose bodies (up to 24 MiB) exceed what Lambda
   * accepts. Off by default: it bills a load balancer and at least one task around the clock.
   */
  dataPlane: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Tasks running at least (also the starting count); request count scales up to maxTasks. */
      desiredTasks: PositiveInt.default(1),
      maxTasks: PositiveInt.default(4),
      /** Fargate CPU units per task (1024 = one vCPU) and memory in MiB; a pair Fargate offers. */
      cpu: z
        .union(FARGATE_CPU_UNITS.map((units) => z.literal(units)), { error: `must be one of ${FARGATE_CPU_UNITS.join(', ')}` })
        .default(1024),
      memoryMiB: z.int('must be a whole number of MiB').default(2048),
      /** An ACM certificate in the tenant's region for `domainName`: the listener serves HTTPS. */
      certificateArn: AcmCertificateArn.optional(),
      /** The data plane's public name; its DNS (a CNAME to the `DataPlaneDomainTarget` output) stays with the operator. */
      domainName: DnsName.optional(),
      /** Plain HTTP without a certificate, on the load balancer's own name: for test deployments only. */
      allowHttp: z.boolean().default(false),
    })
    .superRefine((plane, ctx) => {
      if (plane.maxTasks < plane.desiredTasks) {
        ctx.addIssue({ code: 'custom', path: ['maxTasks'], message: 'must be at least desiredTasks' });
      }
      if (!fargateMemoryFits(plane.cpu, plane.memoryMiB)) {
        ctx.addIssue({ code: 'custom', path: ['memoryMiB'], message: `must be a memory size Fargate offers with ${plane.cpu} CPU units (${fargateMemoryRange(plane.cpu)})` });
      }
      if ((plane.certificateArn === undefined) !== (plane.domainName === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: [plane.certificateArn === undefined ? 'certificateArn' : 'domainName'],
          message: 'certificateArn and domainName go together: the certificate must cover the name clients connect to',
        });
      }
      if (plane.enabled && plane.certificateArn === undefined && !plane.allowHttp) {
        ctx.addIssue({
          code: 'custom',
          path: ['certificateArn'],
          message: 'must be set (with domainName) to serve the data plane over HTTPS; only test deployments may set allowHttp instead',
        });
      }
    })
    .default({ enabled: false, desiredTasks: 1, maxTasks: 4, cpu: 1024, memoryMiB: 2048, allowHttp: false }),
  /** Subscribed by email to the alarm topic (lib/constructs/alarms.ts); AWS asks it to confirm. */
  alarmEmail: z.email('must be an email address').optional(),
  /**
   * true (the default): the table has deletion protection and the table, secrets and logs are
   * retained when the stack is deleted. false, for throwaway tenants: all of them go with it.
   */
  deletionProtection: z.boolean().default(true),
  api: z
    .strictObject({
      /**
       * Caps the API function's concurrency (and reserves it). Unset by default: an account keeps
       * at least 100 unreserved executions, so new accounts (limit 10) cannot reserve any.
       */
      reservedConcurrency: PositiveInt.optional(),
      /** Retention of every log group the stack creates: functions, engine, flow logs, access logs. */
      logRetentionDays: z
        .int()
        .refine((days) => (LOG_RETENTION_DAYS as readonly number[]).includes(days), {
          message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
        })
        .default(30),
    })
    .default({ logRetentionDays: 30 }),
}).superRefine((tenant, ctx) => {
  const catalog = tenant.baseModels ?? DEFAULT_BASE_MODELS;
  const defaultBaseModel = tenant.defaultBaseModel ?? SPEC_DEFAULT_BASE_MODEL;
  // An empty catalog is reported on baseModels already.
  if (catalog.length > 0 && !catalog.includes(defaultBaseModel)) {
    ctx.addIssue({
      code: 'custom',
      path: ['defaultBaseModel'],
      message: tenant.defaultBaseModel
        ? `must be one of baseModels (${catalog.join(', ')})`
        : `must be set to one of baseModels (${catalog.join(', ')}): the default, ${SPEC_DEFAULT_BASE_MODEL}, is not among them`,
    });
  }
  // API Gateway (a regional custom domain) and load balancers use certificates from their own region only.
  const certificates = [
    { path: ['domain', 'certificateArn'], arn: tenant.domain?.certificateArn },
    { path: ['dataPlane', 'certificateArn'], arn: tenant.dataPlane.certificateArn },
  ];
  for (const { path, arn } of certificates) {
    const certificateRegion = arn?.split(':')[3];
    if (certificateRegion !== undefined && certificateRegion !== tenant.region) {
      ctx.addIssue({ code: 'custom', path, message: `must be in the tenant's region (${tenant.region}), not ${certificateRegion}` });
    }
  }
});
export type TenantConfig = z.output<typeof TenantConfig>;

export const TenantsFile = z.strictObject({
  tenants: z
    .array(TenantConfig)
    .min(1, 'must list at least one tenant')
    .superRefine((tenants, ctx) => {
      const seen = new Set<string>();
      tenants.forEach((tenant, index) => {
        if (seen.has(tenant.tenantId)) {
          ctx.addIssue({ code: 'custom', path: [index, 'tenantId'], message: `duplicates tenant '${tenant.tenantId}'` });
        }
        seen.add(tenant.tenantId);
      });
    }),
});

/** Lists every invalid field of a tenant config, one `path: problem` per line. */
export class TenantConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`Invalid tenant config in ${source}:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'TenantConfigError';
  }
}

/** Validates parsed tenant config (`{ "tenants": [...] }`). */
export function loadTenants(raw: unknown, source = 'tenant config'): TenantConfig[] {
  const result = TenantsFile.safeParse(raw);
  if (!result.success) {
    throw new TenantConfigError(
      source,
      result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`),
    );
  }
  return result.data.tenants;
}

/** Reads and validates a tenants JSON file. */
export function readTenantsFile(path: string): TenantConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TenantConfigError(path, [`cannot read JSON: ${(error as Error).message}`]);
  }
  return loadTenants(raw, path);
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((segment, index) =>
      typeof segment === 'number' ? `[${segment}]` : `${index === 0 ? '' : '.'}${String(segment)}`,
    )
    .join('');
}

import { Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import {
  Action,
  EcsEc2ContainerDefinition,
  EcsFargateContainerDefinition,
  EcsJobDefinition,
  EcsMachineImageType,
  FargateComputeEnvironment,
  JobQueue,
  JobStateTimeLimitActionsReason,
  LinuxParameters,
  ManagedEc2EcsComputeEnvironment,
  Reason,
  RetryStrategy,
  type IComputeEnvironment,
} from 'aws-cdk-lib/aws-batch';
import { BlockDeviceVolume, EbsDeviceVolumeType, InstanceType, LaunchTemplate } from 'aws-cdk-lib/aws-ec2';
import { FargatePlatformVersion, LogDriver } from 'aws-cdk-lib/aws-ecs';
import { Grant, Role, ServicePrincipal, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { JOB_ID_TAG } from '../../functions/adapters/aws/batch-compute.ts';
import type { GpuLaneConfig } from '../config.ts';
import { acknowledgeWildcard } from './acknowledge.ts';
import type { BatchNetwork } from './batch-network.ts';
import { GpuLane } from './gpu-lane.ts';
import { engineImage } from './engine-image.ts';
import type { EngineSecrets } from './engine-secrets.ts';

export interface GpuCapacity {
  /** EC2 instance types Batch may launch. */
  readonly instanceTypes: readonly string[];
  /** The most vCPUs running at once, across instances. */
  readonly maxVcpus: number;
  /** Spot instances (reclaimed jobs are retried) rather than on-demand. */
  readonly spot: boolean;
  /** vCPUs and memory one job reserves, besides its one GPU. */
  readonly jobVcpus: number;
  readonly jobMemoryMiB: number;
}

export interface EngineBatchProps {
  readonly network: BatchNetwork;
  readonly gpu: GpuCapacity;
  /** Larger lanes for bakes (tenant `gpuLanes`). Default: none. */
  readonly gpuLanes?: readonly GpuLaneConfig[];
  /** The most Fargate vCPUs stim jobs use at once. Default: 16. */
  readonly cpuMaxVcpus?: number;
  readonly secrets: EngineSecrets;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the engine's log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/** One kind of hardware: where jobs wait, what runs them, and how. */
export interface EngineLane {
  readonly computeEnvironment: IComputeEnvironment;
  readonly jobQueue: JobQueue;
  readonly jobDefinition: EcsJobDefinition;
  /** Pulls the image, writes the logs and reads this lane's secrets (never the job itself). */
  readonly executionRole: Role;
}

/**
 * The engine on AWS Batch (functions/adapters/aws/batch-compute.ts submits to it): rollouts and
 * bakes on a GPU lane (EC2, spot or on-demand, the configured instance types), stim jobs on a
 * CPU lane (Fargate). Both run `python -m bakehouse_engine run <specUri>`: the dispatcher passes
 * `['run', specUri]` as the command.
 *
 * A job is retried only when Batch lost its host (a reclaimed spot instance: status reason
 * `Host EC2*`); any other failure is the engine's verdict, already written to result.json, and
 * running it again would only repeat it.
 */
export class EngineBatch extends Construct {
  /** Attempts per job, counting the first; only host losses use the rest. */
  static readonly ATTEMPTS = 3;
  /** Per attempt: a runaway bake stops costing GPU hours after a day. */
  static readonly GPU_JOB_TIMEOUT = Duration.hours(24);
  static readonly CPU_JOB_TIMEOUT = Duration.hours(4);
  /** The image (~10 GB), base models from the hub and checkpoints share the instance's disk. */
  static readonly GPU_ROOT_VOLUME_GIB = 200;

  /** What the engine itself may do: the tenant's job files (granted by the stack), nothing else. */
  readonly jobRole: Role;
  readonly logGroup: LogGroup;
  readonly gpu: EngineLane;
  readonly cpu: EngineLane;
  /** The tenant's `gpuLanes`, in config order. */
  readonly gpuLanes: GpuLane[];

  constructor(scope: Construct, id: string, props: EngineBatchProps) {
    super(scope, id);
    this.jobRole = new Role(this, 'JobRole', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Bakehouse engine jobs: read and write their own files in the artifact bucket',
    });
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.gpu = this.gpuLane(props);
    this.cpu = this.cpuLane(props);
    this.gpuLanes = (props.gpuLanes ?? []).map(
      (settings) =>
        new GpuLane(this, `GpuLane-${settings.name}`, {
          network: props.network,
          settings,
          image: engineImage('engine/Dockerfile'),
          jobRole: this.jobRole,
          logGroup: this.logGroup,
          secrets: props.secrets,
          timeout: EngineBatch.GPU_JOB_TIMEOUT,
          attempts: EngineBatch.ATTEMPTS,
          rootVolumeGiB: EngineBatch.GPU_ROOT_VOLUME_GIB,
        }),
    );
  }

  /** Every job queue: what the job-events rule listens to. */
  get jobQueueArns(): string[] {
    return [this.gpu.jobQueue.jobQueueArn, this.cpu.jobQueue.jobQueueArn, ...this.gpuLanes.map((lane) => lane.jobQueue.jobQueueArn)];
  }

  /**
   * batch:SubmitJob to these queues with these job definitions, and batch:TagResource for the
   * `bakehouse:job-id` tag the dispatcher puts on every job (tagging on create is authorised
   * separately).
   */
  grantSubmitJobs(grantee: IGrantable): Grant {
    const submit = Grant.addToPrincipal({
      grantee,
      actions: ['batch:SubmitJob'],
      resourceArns: [
        ...this.jobQueueArns,
        this.gpu.jobDefinition.jobDefinitionArn,
        this.cpu.jobDefinition.jobDefinitionArn,
        ...this.gpuLanes.flatMap((lane) => lane.jobDefinitionArns),
      ],
    });
    const tag = Grant.addToPrincipal({
      grantee,
      actions: ['batch:TagResource'],
      resourceArns: [this.jobArns],
      conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [JOB_ID_TAG] } },
    });
    this.acknowledgeJobWildcard(grantee, 'batch:TagResource may only set the bakehouse:job-id tag (aws:TagKeys condition).');
    return submit.combine(tag);
  }

  /** batch:TerminateJob on jobs that carry the `bakehouse:job-id` tag, and no others. */
  grantTerminateJobs(grantee: IGrantable): Grant {
    const grant = Grant.addToPrincipal({
      grantee,
      actions: ['batch:TerminateJob'],
      resourceArns: [this.jobArns],
      conditions: { Null: { [`aws:ResourceTag/${JOB_ID_TAG}`]: 'false' } },
    });
    this.acknowledgeJobWildcard(grantee, 'batch:TerminateJob is limited to jobs tagged bakehouse:job-id (aws:ResourceTag condition).');
    return grant;
  }

  /** s3:GetObject under each operator-allowed dataset folder (tenant `datasetUriPrefixes`), and no more. */
  grantDatasetRead(prefixes: readonly string[]): void {
    if (prefixes.length === 0) return;
    const resources = prefixes.map((prefix) => `arn:${Stack.of(this).partition}:s3:::${prefix.slice('s3://'.length)}*`);
    Grant.addToPrincipal({ grantee: this.jobRole, actions: ['s3:GetObject'], resourceArns: resources });
    for (const prefix of prefixes) {
      const folder = prefix.slice('s3://'.length).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      acknowledgeWildcard(
        this.jobRole,
        // The partition reads `aws` or `<AWS::Partition>`, depending on what the stack knows of its region.
        { regex: `/^Resource::arn:[^:]+:s3:::${folder}\\*$/` },
        'The operator allowed from_dataset generators to read the files under this folder; the API refuses every other URI.',
      );
    }
  }

  /** batch:DescribeJobs, which supports no resource-level permissions. */
  grantDescribeJobs(grantee: IGrantable): Grant {
    const grant = Grant.addToPrincipal({ grantee, actions: ['batch:DescribeJobs'], resourceArns: ['*'] });
    acknowledgeWildcard(
      grantee,
      'Resource::*',
      'batch:DescribeJobs supports no resource-level permissions (Service Authorization Reference), so its ' +
        'resource must be "*"; it only reads job status.',
    );
    return grant;
  }

  /** `arn:…:batch:<region>:<account>:job/*`: a job's ARN holds only its Batch-generated id. */
  private get jobArns(): string {
    return Stack.of(this).formatArn({ service: 'batch', resource: 'job', resourceName: '*' });
  }

  private acknowledgeJobWildcard(grantee: IGrantable, scoping: string): void {
    acknowledgeWildcard(
      grantee,
      // The finding reads `arn:aws:batch:eu-west-1:<AWS::AccountId>:job/*` or similar, depending on
      // what the stack knows of its environment.
      { regex: '/^Resource::arn:[^:]+:batch:[^:]+:.+:job\\/\\*$/' },
      `A Batch job ARN holds only the id Batch assigns at submission, so no ARN pattern can name this ` +
        `tenant's jobs in advance; ${scoping}`,
    );
  }

  private gpuLane({ network, gpu, secrets }: EngineBatchProps): EngineLane {
    const launchTemplate = new LaunchTemplate(this, 'GpuLaunchTemplate', {
      // Containers get credentials from the job role, never from the instance's metadata.
      requireImdsv2: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: BlockDeviceVolume.ebs(EngineBatch.GPU_ROOT_VOLUME_GIB, { volumeType: EbsDeviceVolumeType.GP3, encrypted: true }),
        },
      ],
    });
    const computeEnvironment = new ManagedEc2EcsComputeEnvironment(this, 'GpuEnvironment', {
      vpc: network.vpc,
      vpcSubnets: network.subnets,
      securityGroups: [network.securityGroup],
      instanceTypes: gpu.instanceTypes.map((type) => new InstanceType(type)),
      useOptimalInstanceClasses: false,
      // SPOT_PRICE_CAPACITY_OPTIMIZED for spot, BEST_FIT_PROGRESSIVE on demand (the defaults).
      spot: gpu.spot,
      minvCpus: 0,
      maxvCpus: gpu.maxVcpus,
      // The GPU AMI explicitly: the AL2023 default image type is the non-GPU one.
      images: [{ imageType: EcsMachineImageType.ECS_AL2023_NVIDIA }],
      launchTemplate,
      updateToLatestImageVersion: true,
    });
    NagSuppressions.addResourceSuppressions(
      computeEnvironment.node.findChild('InstanceProfileRole'),
      [
        {
          id: 'AwsSolutions-IAM4',
          reason:
            'AmazonEC2ContainerServiceforEC2Role is what the ECS agent on a Batch instance needs to register with ' +
            'the cluster and run tasks; jobs do not use this role (they run with the job role).',
          appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role'],
        },
      ],
    );
    const executionRole = this.executionRole('GpuExecutionRole');
    const container = new EcsEc2ContainerDefinition(this, 'GpuContainer', {
      image: engineImage('engine/Dockerfile'),
      gpu: 1,
      cpu: gpu.jobVcpus,
      memory: Size.mebibytes(gpu.jobMemoryMiB),
      // PyTorch data loaders share tensors through /dev/shm; Docker's default is 64 MiB.
      linuxParameters: new LinuxParameters(this, 'GpuLinuxParameters', { sharedMemorySize: Size.gibibytes(2) }),
      jobRole: this.jobRole,
      executionRole,
      // Base models other than the toy come from the Hugging Face Hub.
      environment: { BAKEHOUSE_HUB_ACCESS: '1' },
      secrets: secrets.hubContainerSecrets,
      logging: LogDriver.awsLogs({ logGroup: this.logGroup, streamPrefix: 'gpu' }),
    });
    acknowledgeImagePull(executionRole);
    return this.lane('Gpu', computeEnvironment, container, EngineBatch.GPU_JOB_TIMEOUT, executionRole);
  }

  private cpuLane({ network, cpuMaxVcpus, secrets }: EngineBatchProps): EngineLane {
    const computeEnvironment = new FargateComputeEnvironment(this, 'CpuEnvironment', {
      vpc: network.vpc,
      vpcSubnets: network.subnets,
      securityGroups: [network.securityGroup],
      maxvCpus: cpuMaxVcpus ?? 16,
    });
    const executionRole = this.executionRole('CpuExecutionRole');
    const container = new EcsFargateContainerDefinition(this, 'CpuContainer', {
      image: engineImage('engine/Dockerfile.cpu'),
      cpu: 1,
      memory: Size.gibibytes(2),
      // Public subnets without NAT: a task needs a public address to reach ECR and the LLM API.
      assignPublicIp: true,
      fargatePlatformVersion: FargatePlatformVersion.LATEST,
      jobRole: this.jobRole,
      executionRole,
      secrets: secrets.llmContainerSecrets,
      logging: LogDriver.awsLogs({ logGroup: this.logGroup, streamPrefix: 'cpu' }),
    });
    acknowledgeImagePull(executionRole);
    return this.lane('Cpu', computeEnvironment, container, EngineBatch.CPU_JOB_TIMEOUT, executionRole);
  }

  private lane(
    name: 'Gpu' | 'Cpu',
    computeEnvironment: IComputeEnvironment,
    container: EcsEc2ContainerDefinition | EcsFargateContainerDefinition,
    timeout: Duration,
    executionRole: Role,
  ): EngineLane {
    const jobQueue = new JobQueue(this, `${name}Queue`, {
      computeEnvironments: [{ computeEnvironment, order: 1 }],
      priority: 1,
      // A job no instance can ever hold would otherwise wait forever as "not started"; cancelled,
      // it fails with Batch's reason, which the job-events function passes on to the user.
      jobStateTimeLimitActions: [
        { maxTime: Duration.minutes(30), reason: JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT },
        { maxTime: Duration.minutes(30), reason: JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE },
      ],
    });
    const jobDefinition = new EcsJobDefinition(this, `${name}Jobs`, {
      container,
      timeout,
      retryAttempts: EngineBatch.ATTEMPTS,
      retryStrategies: [
        RetryStrategy.of(Action.RETRY, Reason.SPOT_INSTANCE_RECLAIMED),
        // Conditions are tried in order; anything else (the engine's own exit) ends the job.
        RetryStrategy.of(Action.EXIT, Reason.custom({ onReason: '*' })),
      ],
      // The job's bakehouse:job-id tag reaches its ECS task, so cost reports can name the job.
      propagateTags: true,
    });
    return { computeEnvironment, jobQueue, jobDefinition, executionRole };
  }

  private executionRole(id: string): Role {
    return new Role(this, id, { assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com') });
  }
}

/** Call once the container has bound its image (that adds the pull grant). */
function acknowledgeImagePull(executionRole: Role): void {
  acknowledgeWildcard(
    executionRole,
    'Resource::*',
    'ecr:GetAuthorizationToken, needed to pull the engine image, supports no resource-level permissions.',
  );
}

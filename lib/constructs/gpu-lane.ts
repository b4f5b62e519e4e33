import { Duration, Size } from 'aws-cdk-lib';
import {
  Action,
  EcsEc2ContainerDefinition,
  EcsJobDefinition,
  EcsMachineImageType,
  JobQueue,
  JobStateTimeLimitActionsReason,
  LinuxParameters,
  ManagedEc2EcsComputeEnvironment,
  MultiNodeJobDefinition,
  Reason,
  RetryStrategy,
  type CfnJobDefinition,
} from 'aws-cdk-lib/aws-batch';
import {
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  InstanceType,
  LaunchTemplate,
  PlacementGroup,
  PlacementGroupStrategy,
  Port,
  SecurityGroup,
  type ISecurityGroup,
} from 'aws-cdk-lib/aws-ec2';
import { LogDriver, type ContainerImage } from 'aws-cdk-lib/aws-ecs';
import { Role, ServicePrincipal, type IRole } from 'aws-cdk-lib/aws-iam';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { GpuLaneConfig } from '../config.ts';
import { acknowledgeWildcard } from './acknowledge.ts';
import type { BatchNetwork } from './batch-network.ts';
import type { EngineSecrets } from './engine-secrets.ts';

export interface GpuLaneProps {
  readonly network: BatchNetwork;
  readonly settings: GpuLaneConfig;
  readonly image: ContainerImage;
  readonly jobRole: IRole;
  readonly logGroup: ILogGroup;
  readonly secrets: EngineSecrets;
  readonly timeout: Duration;
  readonly attempts: number;
  readonly rootVolumeGiB: number;
}

/**
 * One GPU lane for bakes (tenant `gpuLanes`): an EC2 compute environment of the lane's instance
 * types, its job queue, a single-node job definition that gives a job every GPU of its instance,
 * and, for lanes of more than one node, an AWS Batch multi-node parallel job definition.
 *
 * Multi-node jobs: Batch starts node 0 (the main node) first and gives every node
 * `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`, `AWS_BATCH_JOB_NODE_INDEX` and
 * `AWS_BATCH_JOB_NUM_NODES`, from which the engine's torchrun rendezvous is set up. The nodes
 * sit in a cluster placement group (one availability zone, low-latency network for the
 * collectives) and in a security group that lets the lane's instances reach one another, and
 * nothing else in.
 */
export class GpuLane extends Construct {
  readonly settings: GpuLaneConfig;
  readonly computeEnvironment: ManagedEc2EcsComputeEnvironment;
  readonly jobQueue: JobQueue;
  readonly jobDefinition: EcsJobDefinition;
  /** Only for lanes with maxNodes > 1; submissions set the node count with `nodeOverrides`. */
  readonly multiNodeJobDefinition?: MultiNodeJobDefinition;
  readonly executionRole: Role;

  constructor(scope: Construct, id: string, props: GpuLaneProps) {
    super(scope, id);
    const { settings } = props;
    this.settings = settings;
    const multiNode = settings.maxNodes > 1;
    const securityGroups: ISecurityGroup[] = [props.network.securityGroup];
    if (multiNode) {
      const peers = new SecurityGroup(this, 'NodePeers', {
        vpc: props.network.vpc,
        description: `Bakehouse ${settings.name} lane: nodes of one multi-node bake reach one another (NCCL, torchrun rendezvous)`,
        allowAllOutbound: true,
      });
      peers.addIngressRule(peers, Port.allTraffic(), 'Nodes of the same lane');
      securityGroups.push(peers);
    }

    this.computeEnvironment = new ManagedEc2EcsComputeEnvironment(this, 'Environment', {
      vpc: props.network.vpc,
      // A cluster placement group lives in one availability zone: so must the lane's subnets.
      vpcSubnets: multiNode ? { subnets: props.network.vpc.selectSubnets(props.network.subnets).subnets.slice(0, 1) } : props.network.subnets,
      securityGroups,
      instanceTypes: settings.instanceTypes.map((type) => new InstanceType(type)),
      useOptimalInstanceClasses: false,
      spot: settings.spot,
      minvCpus: 0,
      maxvCpus: settings.maxVcpus,
      images: [{ imageType: EcsMachineImageType.ECS_AL2023_NVIDIA }],
      launchTemplate: new LaunchTemplate(this, 'LaunchTemplate', {
        requireImdsv2: true,
        blockDevices: [
          {
            deviceName: '/dev/xvda',
            volume: BlockDeviceVolume.ebs(props.rootVolumeGiB, { volumeType: EbsDeviceVolumeType.GP3, encrypted: true }),
          },
        ],
      }),
      ...(multiNode ? { placementGroup: new PlacementGroup(this, 'Placement', { strategy: PlacementGroupStrategy.CLUSTER }) } : {}),
      updateToLatestImageVersion: true,
    });
    NagSuppressions.addResourceSuppressions(this.computeEnvironment.node.findChild('InstanceProfileRole'), [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          'AmazonEC2ContainerServiceforEC2Role is what the ECS agent on a Batch instance needs to register with ' +
          'the cluster and run tasks; jobs do not use this role (they run with the job role).',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role'],
      },
    ]);

    this.executionRole = new Role(this, 'ExecutionRole', { assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com') });
    const container = new EcsEc2ContainerDefinition(this, 'Container', {
      image: props.image,
      gpu: settings.gpusPerNode,
      cpu: settings.jobVcpus,
      memory: Size.mebibytes(settings.jobMemoryMiB),
      // Data loaders and NCCL's intra-node transport share memory through /dev/shm (Docker's default: 64 MiB).
      linuxParameters: new LinuxParameters(this, 'LinuxParameters', { sharedMemorySize: Size.gibibytes(2 * settings.gpusPerNode) }),
      jobRole: props.jobRole,
      executionRole: this.executionRole,
      environment: { BAKEHOUSE_HUB_ACCESS: '1' },
      secrets: props.secrets.hubContainerSecrets,
      logging: LogDriver.awsLogs({ logGroup: props.logGroup, streamPrefix: `gpu-${settings.name}` }),
    });
    acknowledgeWildcard(
      this.executionRole,
      'Resource::*',
      'ecr:GetAuthorizationToken, needed to pull the engine image, supports no resource-level permissions.',
    );

    this.jobQueue = new JobQueue(this, 'Queue', {
      computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
      priority: 1,
      jobStateTimeLimitActions: [
        { maxTime: Duration.minutes(30), reason: JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT },
        { maxTime: Duration.minutes(30), reason: JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE },
      ],
    });
    const common = {
      timeout: props.timeout,
      retryAttempts: props.attempts,
      retryStrategies: [
        RetryStrategy.of(Action.RETRY, Reason.SPOT_INSTANCE_RECLAIMED),
        RetryStrategy.of(Action.EXIT, Reason.custom({ onReason: '*' })),
      ],
      propagateTags: true,
    };
    this.jobDefinition = new EcsJobDefinition(this, 'Jobs', { container, ...common });
    if (multiNode) {
      this.multiNodeJobDefinition = new MultiNodeJobDefinition(this, 'MultiNodeJobs', {
        containers: [{ container, startNode: 0, endNode: settings.maxNodes - 1 }],
        mainNode: 0,
        ...common,
      });
      // Every node runs the same container; an open range stays valid for any `numNodes` a
      // submission asks for (a closed one would have to match it).
      (this.multiNodeJobDefinition.node.defaultChild as CfnJobDefinition).addPropertyOverride(
        'NodeProperties.NodeRangeProperties.0.TargetNodes',
        '0:',
      );
    }
  }

  /** The job definitions a dispatcher may submit with. */
  get jobDefinitionArns(): string[] {
    return [this.jobDefinition.jobDefinitionArn, ...(this.multiNodeJobDefinition ? [this.multiNodeJobDefinition.jobDefinitionArn] : [])];
  }
}

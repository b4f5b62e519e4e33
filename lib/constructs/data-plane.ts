import { fileURLToPath } from 'node:url';
import { Duration, IgnoreMode, RemovalPolicy } from 'aws-cdk-lib';
import { SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { MathExpression } from 'aws-cdk-lib/aws-cloudwatch';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  FargatePlatformVersion,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import {
  ApplicationLoadBalancer,
  ApplicationProtocol,
  HttpCodeElb,
  HttpCodeTarget,
  ListenerCertificate,
  SslPolicy,
  type ApplicationListener,
  type ApplicationTargetGroup,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { acknowledgeWildcard } from './acknowledge.ts';
import type { BatchNetwork } from './batch-network.ts';
import { dockerignore } from './engine-image.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Relative to the repository root, the image's build context. */
export const DATA_PLANE_DOCKERFILE = 'functions/handlers/Dockerfile.data-plane';

export interface DataPlaneSettings {
  /** Tasks running at least; request count scales between this and `maxTasks`. */
  readonly desiredTasks: number;
  readonly maxTasks: number;
  /** Fargate CPU units and memory (MiB) per task: a pair Fargate offers (lib/config.ts checks). */
  readonly cpu: number;
  readonly memoryMiB: number;
  /** HTTPS on 443 with this certificate, for `domainName`. */
  readonly certificateArn?: string;
  readonly domainName?: string;
  /** Without a certificate: plain HTTP on 80, on the load balancer's own name (test deployments). */
  readonly allowHttp: boolean;
}

export interface DataPlaneProps {
  /** The engine's VPC: the load balancer and the tasks sit in its public subnets, beside the trainers. */
  readonly network: BatchNetwork;
  readonly settings: DataPlaneSettings;
  /** The runtime configuration every handler reads (functions/composition.ts `awsConfigFromEnv`). */
  readonly environment: Record<string, string>;
  /** Where the load balancer writes its access logs (under `data-plane/`). */
  readonly accessLogs: IBucket;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The training data plane (DESIGN.md §7): the API's Hono app (functions/handlers/data-plane.ts)
 * on ECS Fargate behind an internet-facing Application Load Balancer, so that the Loops SDK's
 * request bodies (up to 24 MiB, functions/http's body limit for `/loops/` paths) and the trainers'
 * relay exchanges reach the app whole: Lambda takes at most 6 MB, and an ALB sets no body limit.
 * The control plane stays on the API function; both serve the same routes over the same table and
 * bucket, so either may answer any request.
 *
 * The tasks sit in the engine's public subnets with public addresses (there is no NAT gateway) and
 * accept connections from the load balancer alone. Trainers on Batch reach the load balancer at its
 * public name, like any client: `BAKEHOUSE_DATA_PLANE_URL` is the origin the API gives them as
 * their relay (functions/core/training).
 *
 * Grants are the caller's: the task role starts with no permission at all.
 */
export class DataPlane extends Construct {
  /** The container's port; the load balancer forwards to it. */
  static readonly CONTAINER_PORT = 8080;
  /** The route the load balancer checks: no API key, no Store access. */
  static readonly HEALTH_CHECK_PATH = '/v1/health';
  /**
   * A connection may sit idle this long. Operation polls are held up to ~30 s and relay polls
   * 20 s; the container keeps connections open longer than this (functions/handlers/data-plane.ts),
   * so that the load balancer never reuses one the container has just closed (a 502).
   */
  static readonly IDLE_TIMEOUT = Duration.seconds(60);
  /**
   * Target tracking on ALBRequestCountPerTarget (requests per task per minute): mostly polls that
   * wait, with some bodies of megabytes to parse; a task keeps up with about ten a second.
   */
  static readonly REQUESTS_PER_TASK_PER_MINUTE = 600;

  readonly cluster: Cluster;
  readonly taskDefinition: FargateTaskDefinition;
  readonly service: FargateService;
  readonly loadBalancer: ApplicationLoadBalancer;
  readonly listener: ApplicationListener;
  readonly targetGroup: ApplicationTargetGroup;
  /** What the app may do; grants land in its default policy. */
  readonly taskRole: Role;
  readonly logGroup: LogGroup;
  /** `https://<domainName>`, or `http://<load balancer name>` where plain HTTP is allowed. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: DataPlaneProps) {
    super(scope, id);
    const { network, settings } = props;
    const https = settings.certificateArn !== undefined;
    if (!https && !settings.allowHttp) {
      throw new Error('DataPlane: a certificate (with its domain name) is required unless allowHttp is set');
    }

    this.loadBalancer = new ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: network.vpc,
      vpcSubnets: network.subnets,
      internetFacing: true,
      idleTimeout: DataPlane.IDLE_TIMEOUT,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(props.accessLogs, 'data-plane');
    NagSuppressions.addResourceSuppressions(this.loadBalancer.node.findChild('SecurityGroup'), [
      {
        id: 'AwsSolutions-EC23',
        reason:
          'The data plane is a public API: SDK clients and trainer jobs connect from anywhere, and the app checks ' +
          'an API key (or a relay token) on every route but the health check.',
      },
    ]);

    this.listener = https
      ? this.loadBalancer.addListener('Https', {
          port: 443,
          protocol: ApplicationProtocol.HTTPS,
          certificates: [ListenerCertificate.fromArn(settings.certificateArn!)],
          sslPolicy: SslPolicy.RECOMMENDED_TLS,
          open: true,
        })
      : this.loadBalancer.addListener('Http', { port: 80, protocol: ApplicationProtocol.HTTP, open: true });
    this.url = https ? `https://${settings.domainName}` : `http://${this.loadBalancer.loadBalancerDnsName}`;

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.taskRole = new Role(this, 'TaskRole', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Bakehouse data plane: the API routes, with the grants of the API functions',
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu: settings.cpu,
      memoryLimitMiB: settings.memoryMiB,
      taskRole: this.taskRole,
      // The image is built for linux/amd64 whatever machine deploys, like the engine's.
      runtimePlatform: { cpuArchitecture: CpuArchitecture.X86_64, operatingSystemFamily: OperatingSystemFamily.LINUX },
    });
    this.taskDefinition.addContainer('Api', {
      image: dataPlaneImage(),
      portMappings: [{ containerPort: DataPlane.CONTAINER_PORT }],
      environment: { ...props.environment, PORT: String(DataPlane.CONTAINER_PORT), BAKEHOUSE_DATA_PLANE_URL: this.url },
      logging: LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'data-plane' }),
      // The app writes nothing locally: state lives in the table and the bucket.
      readonlyRootFilesystem: true,
    });
    NagSuppressions.addResourceSuppressions(this.taskDefinition, [
      {
        id: 'AwsSolutions-ECS2',
        reason:
          'The environment holds resource names and settings (table, bucket, queues, Batch queues, URLs), the same ' +
          'the API functions get; no secret is passed this way.',
      },
    ]);
    acknowledgeWildcard(
      this.taskDefinition.obtainExecutionRole(),
      'Resource::*',
      'ecr:GetAuthorizationToken, needed to pull the data plane image, supports no resource-level permissions.',
    );

    this.cluster = new Cluster(this, 'Cluster', { vpc: network.vpc, containerInsightsV2: ContainerInsights.ENABLED });
    // Registering the service with the target group lets the load balancer in on the container port.
    const tasks = new SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: network.vpc,
      description: 'Bakehouse data plane tasks: in from the load balancer only; out to AWS APIs',
      allowAllOutbound: true,
    });
    this.service = new FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: settings.desiredTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      // Public subnets without NAT: a task needs a public address to reach DynamoDB, SQS and ECR.
      assignPublicIp: true,
      vpcSubnets: network.subnets,
      securityGroups: [tasks],
      platformVersion: FargatePlatformVersion.LATEST,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(60),
    });
    this.targetGroup = this.listener.addTargets('Tasks', {
      port: DataPlane.CONTAINER_PORT,
      protocol: ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: { path: DataPlane.HEALTH_CHECK_PATH, healthyHttpCodes: '200', interval: Duration.seconds(15) },
      // A stopping task finishes what it holds: a poll held ~30 s, or a 24 MiB upload on a slow link.
      deregistrationDelay: Duration.seconds(60),
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: settings.desiredTasks, maxCapacity: settings.maxTasks });
    scaling.scaleOnRequestCount('Requests', {
      requestsPerTarget: DataPlane.REQUESTS_PER_TASK_PER_MINUTE,
      targetGroup: this.targetGroup,
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });
  }

  /**
   * 5xx answers per five minutes, the app's (a 500) and the load balancer's own (502-504: no
   * healthy task, a task that dropped the connection or took too long) together.
   */
  metricServerErrors(): MathExpression {
    const period = Duration.minutes(5);
    return new MathExpression({
      expression: 'FILL(app, 0) + FILL(balancer, 0)',
      label: 'Data plane 5xx',
      period,
      usingMetrics: {
        app: this.loadBalancer.metrics.httpCodeTarget(HttpCodeTarget.TARGET_5XX_COUNT, { statistic: 'Sum', period }),
        balancer: this.loadBalancer.metrics.httpCodeElb(HttpCodeElb.ELB_5XX_COUNT, { statistic: 'Sum', period }),
      },
    });
  }

  /** The load balancer's own name: where a CNAME for `domainName` points. */
  get loadBalancerDnsName(): string {
    return this.loadBalancer.loadBalancerDnsName;
  }
}

/**
 * The data plane image, built from the repository root with DATA_PLANE_DOCKERFILE. As with the
 * engine images (engine-image.ts), synth only fingerprints and copies the context, and `cdk deploy`
 * builds it, so synth needs no Docker. The context is what `<Dockerfile>.dockerignore` lets in:
 * the lockfile and functions/, not node_modules or the virtualenvs.
 */
function dataPlaneImage(): ContainerImage {
  return ContainerImage.fromAsset(REPO_ROOT, {
    file: DATA_PLANE_DOCKERFILE,
    platform: Platform.LINUX_AMD64,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: dockerignore(`${REPO_ROOT}${DATA_PLANE_DOCKERFILE}.dockerignore`),
  });
}

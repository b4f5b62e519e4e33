import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, type CfnResource } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { checkpointPrefix, runStatePrefix } from '../../functions/core/training/checkpoint-paths.ts';
import { loadTenants, TenantConfigError } from '../../lib/config.ts';
import { ArtifactBucket } from '../../lib/constructs/artifact-bucket.ts';
import { DataPlane } from '../../lib/constructs/data-plane.ts';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { cdkApp, statementsOf, tenantConfig, type PolicyStatement } from './support.ts';

// One app, three tenants: HTTPS on the tenant's own name, plain HTTP for a test deployment, and
// none. No stack is bundled: these assertions read the template, not the functions' code.
const CERTIFICATE_ARN = 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789';
const app = cdkApp({ 'aws:cdk:bundling-stacks': [] });
const acme = new TenantStack(app, 'Bakehouse-acme', {
  tenant: tenantConfig({
    tenantId: 'acme',
    account: '123456789012',
    dataPlane: { enabled: true, desiredTasks: 2, maxTasks: 6, cpu: 2048, memoryMiB: 8192, certificateArn: CERTIFICATE_ARN, domainName: 'loops.acme.example' },
  }),
});
const scratch = new TenantStack(app, 'Bakehouse-scratch', {
  tenant: tenantConfig({ tenantId: 'scratch', deletionProtection: false, dataPlane: { enabled: true, allowHttp: true } }),
});
const plain = new TenantStack(app, 'Bakehouse-plain', { tenant: tenantConfig({ tenantId: 'plain' }) });
const template = Template.fromStack(acme);
const scratchTemplate = Template.fromStack(scratch);
// Template JSON is untyped; the assertions below are what check its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, Json> }>;

function idOf(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnResource);
}

const dataPlane = acme.dataPlane!;
const ids = {
  loadBalancer: idOf(dataPlane.loadBalancer),
  loadBalancerGroup: idOf(dataPlane.loadBalancer.connections.securityGroups[0]!),
  listener: idOf(dataPlane.listener),
  targetGroup: idOf(dataPlane.targetGroup),
  service: idOf(dataPlane.service),
  taskDefinition: idOf(dataPlane.taskDefinition),
  taskRole: idOf(dataPlane.taskRole),
  taskGroup: idOf(dataPlane.service.connections.securityGroups[0]!),
  logs: idOf(dataPlane.logGroup),
  accessLogs: idOf(acme.artifacts.accessLogs),
  chatRole: idOf(acme.chat.role),
  apiRole: idOf(acme.api.role),
  engineGroup: idOf(acme.network.securityGroup),
  gpuEnvironment: idOf(acme.engine.gpu.computeEnvironment),
  gpuQueue: idOf(acme.engine.gpu.jobQueue),
  gpuJobs: idOf(acme.engine.gpu.jobDefinition),
};
const only = (type: string) => Object.entries(resources).filter(([, resource]) => resource.Type === type);
const container = () => resources[ids.taskDefinition]!.Properties.ContainerDefinitions[0];

describe('tenant config: dataPlane', () => {
  const valid = { tenantId: 'acme', region: 'eu-west-1', gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 8 } };
  const problems = (dataPlane: unknown) => {
    try {
      loadTenants({ tenants: [{ ...valid, dataPlane }] });
    } catch (error) {
      expect(error).toBeInstanceOf(TenantConfigError);
      return (error as TenantConfigError).problems;
    }
    throw new Error('expected the config to be rejected');
  };

  it('is off by default, with one task of one vCPU and 2 GiB when turned on', () => {
    expect(loadTenants({ tenants: [valid] })[0]!.dataPlane).toEqual({ enabled: false, desiredTasks: 1, maxTasks: 4, cpu: 1024, memoryMiB: 2048, allowHttp: false });
    expect(plain.dataPlane).toBeUndefined();
  });

  it('serves HTTPS with a certificate for its own name, and plain HTTP only when a test deployment asks', () => {
    expect(problems({ enabled: true })).toEqual([
      'tenants[0].dataPlane.certificateArn: must be set (with domainName) to serve the data plane over HTTPS; only test deployments may set allowHttp instead',
    ]);
    expect(problems({ enabled: true, certificateArn: CERTIFICATE_ARN })).toEqual([
      'tenants[0].dataPlane.domainName: certificateArn and domainName go together: the certificate must cover the name clients connect to',
    ]);
    expect(problems({ domainName: 'loops.acme.example' })).toEqual([
      'tenants[0].dataPlane.certificateArn: certificateArn and domainName go together: the certificate must cover the name clients connect to',
    ]);
    expect(problems({ enabled: true, certificateArn: CERTIFICATE_ARN.replace('eu-west-1', 'us-east-1'), domainName: 'loops.acme.example' })).toEqual([
      "tenants[0].dataPlane.certificateArn: must be in the tenant's region (eu-west-1), not us-east-1",
    ]);
  });

  it('takes only task sizes Fargate offers, and a task range that holds the desired count', () => {
    expect(problems({ cpu: 1000 })).toEqual(['tenants[0].dataPlane.cpu: must be one of 512, 1024, 2048, 4096, 8192, 16384']);
    expect(problems({ cpu: 1024, memoryMiB: 1024 })).toEqual([
      'tenants[0].dataPlane.memoryMiB: must be a memory size Fargate offers with 1024 CPU units (2048 to 8192 MiB in steps of 1024)',
    ]);
    expect(problems({ cpu: 8192, memoryMiB: 20_000 })).toEqual([
      'tenants[0].dataPlane.memoryMiB: must be a memory size Fargate offers with 8192 CPU units (16384 to 61440 MiB in steps of 4096)',
    ]);
    expect(problems({ desiredTasks: 3, maxTasks: 2 })).toEqual(['tenants[0].dataPlane.maxTasks: must be at least desiredTasks']);
    expect(problems({ desiredTasks: 0 })).toEqual(['tenants[0].dataPlane.desiredTasks: must be a positive integer']);
  });
});

describe('DataPlane', () => {
  it('is built only where the tenant turns it on', () => {
    const plainResources = Object.values(Template.fromStack(plain).toJSON().Resources as Record<string, { Type: string }>);
    expect(plainResources.filter((resource) => /ECS|ElasticLoadBalancing/.test(resource.Type))).toEqual([]);
    expect(JSON.stringify(Template.fromStack(plain).toJSON())).not.toContain('BAKEHOUSE_DATA_PLANE_URL');
  });

  it('listens on HTTPS 443 alone with the configured certificate and a TLS 1.2+ policy, forwarding to the tasks', () => {
    expect(only('AWS::ElasticLoadBalancingV2::Listener').map(([, listener]) => listener.Properties)).toEqual([
      {
        LoadBalancerArn: { Ref: ids.loadBalancer },
        Port: 443,
        Protocol: 'HTTPS',
        Certificates: [{ CertificateArn: CERTIFICATE_ARN }],
        SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
        DefaultActions: [{ Type: 'forward', TargetGroupArn: { Ref: ids.targetGroup } }],
        Tags: expect.any(Array),
      },
    ]);
    // Port 443 is the only way in, from anywhere (SDK clients and trainers); nothing else is open.
    expect(resources[ids.loadBalancerGroup]!.Properties.SecurityGroupIngress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
  });

  it('listens on plain HTTP 80 only in a test deployment that allows it', () => {
    scratchTemplate.resourcePropertiesCountIs('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' }, 1);
    scratchTemplate.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    expect(JSON.stringify(scratchTemplate.toJSON().Resources)).not.toContain('Certificates');
  });

  it('faces the internet from the engine subnets, drops malformed headers and logs every request', () => {
    const balancer = resources[ids.loadBalancer]!.Properties;
    expect(balancer).toEqual(
      expect.objectContaining({
        Type: 'application',
        Scheme: 'internet-facing',
        Subnets: resources[ids.gpuEnvironment]!.Properties.ComputeResources.Subnets,
      }),
    );
    expect(balancer.LoadBalancerAttributes).toEqual(
      expect.arrayContaining([
        { Key: 'idle_timeout.timeout_seconds', Value: String(DataPlane.IDLE_TIMEOUT.toSeconds()) },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: { Ref: ids.accessLogs } },
        { Key: 'access_logs.s3.prefix', Value: 'data-plane' },
      ]),
    );
  });

  it('checks task health on /v1/health, and drains a stopping task for longer than a held poll', () => {
    expect(resources[ids.targetGroup]!.Properties).toEqual(
      expect.objectContaining({
        TargetType: 'ip',
        Protocol: 'HTTP',
        Port: DataPlane.CONTAINER_PORT,
        HealthCheckPath: '/v1/health',
        Matcher: { HttpCode: '200' },
        TargetGroupAttributes: expect.arrayContaining([{ Key: 'deregistration_delay.timeout_seconds', Value: '60' }]),
      }),
    );
  });

  it('puts nothing between the load balancer and the tasks that limits body size (24 MiB Loops bodies pass whole)', () => {
    // An ALB sets no request body limit. A WAF web ACL would inspect (and may block) large bodies,
    // and a listener rule could answer before the tasks; the listener forwards everything (above).
    expect(only('AWS::WAFv2::WebACLAssociation')).toEqual([]);
    expect(only('AWS::ElasticLoadBalancingV2::ListenerRule')).toEqual([]);
    // The URL the SDK is given is the load balancer's, not a function's (Lambda takes 6 MB at most).
    expect(acme.dataPlane!.url).toBe('https://loops.acme.example');
  });

  it('runs the app on Fargate: the configured size, public addresses without NAT, rolled back when a deploy fails', () => {
    expect(resources[ids.service]!.Properties).toEqual(
      expect.objectContaining({
        LaunchType: 'FARGATE',
        DesiredCount: 2,
        DeploymentConfiguration: { DeploymentCircuitBreaker: { Enable: true, Rollback: true }, MaximumPercent: 200, MinimumHealthyPercent: 100 },
        LoadBalancers: [{ ContainerName: 'Api', ContainerPort: DataPlane.CONTAINER_PORT, TargetGroupArn: { Ref: ids.targetGroup } }],
        NetworkConfiguration: {
          AwsvpcConfiguration: {
            AssignPublicIp: 'ENABLED',
            SecurityGroups: [{ 'Fn::GetAtt': [ids.taskGroup, 'GroupId'] }],
            Subnets: resources[ids.gpuEnvironment]!.Properties.ComputeResources.Subnets,
          },
        },
      }),
    );
    expect(resources[ids.taskDefinition]!.Properties).toEqual(
      expect.objectContaining({
        Cpu: '2048',
        Memory: '8192',
        RequiresCompatibilities: ['FARGATE'],
        RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' },
        TaskRoleArn: { 'Fn::GetAtt': [ids.taskRole, 'Arn'] },
      }),
    );
    expect(container()).toEqual(
      expect.objectContaining({
        PortMappings: [{ ContainerPort: DataPlane.CONTAINER_PORT, Protocol: 'tcp' }],
        ReadonlyRootFilesystem: true,
        LogConfiguration: expect.objectContaining({ LogDriver: 'awslogs', Options: expect.objectContaining({ 'awslogs-group': { Ref: ids.logs } }) }),
      }),
    );
  });

  it('lets only the load balancer reach the tasks, on the container port', () => {
    const ingress = only('AWS::EC2::SecurityGroupIngress').filter(([, rule]) => JSON.stringify(rule.Properties.GroupId).includes(ids.taskGroup));
    expect(ingress.map(([, rule]) => rule.Properties)).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: DataPlane.CONTAINER_PORT,
        ToPort: DataPlane.CONTAINER_PORT,
        SourceSecurityGroupId: { 'Fn::GetAtt': [ids.loadBalancerGroup, 'GroupId'] },
      }),
    ]);
    expect(resources[ids.taskGroup]!.Properties.SecurityGroupIngress).toBeUndefined();
  });

  it('scales on requests per task between the desired and the maximum count', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 6,
      ScalableDimension: 'ecs:service:DesiredCount',
      ServiceNamespace: 'ecs',
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: {
          PredefinedMetricType: 'ALBRequestCountPerTarget',
          ResourceLabel: Match.anyValue(),
        },
        TargetValue: DataPlane.REQUESTS_PER_TASK_PER_MINUTE,
        ScaleInCooldown: 300,
        ScaleOutCooldown: 60,
      },
    });
    const [[, policy]] = only('AWS::ApplicationAutoScaling::ScalingPolicy') as [[string, Json]];
    expect(JSON.stringify(policy.Properties.TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification.ResourceLabel)).toContain(ids.targetGroup);
    // Never below one task: the minimum is the configured desired count, which must be positive.
    scratchTemplate.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 1, MaxCapacity: 4 });
  });

  it('builds its image from the repository root at deploy time, for linux/amd64, with only the lockfile and functions/ in the context', () => {
    const assets = JSON.parse(readFileSync(join(app.outdir, `${acme.artifactId}.assets.json`), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string } }>;
    };
    const images = Object.entries(assets.dockerImages).filter(([, image]) => image.source.dockerFile === 'functions/handlers/Dockerfile.data-plane');
    expect(images.map(([, image]) => image.source.platform)).toEqual(['linux/amd64']);
    const [[hash, image]] = images as [[string, (typeof images)[number][1]]];
    expect(JSON.stringify(container().Image)).toContain(`:${hash}`);
    const context = join(app.outdir, image.source.directory);
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'functions/handlers/data-plane.ts', 'functions/handlers/Dockerfile.data-plane', 'functions/composition.ts']) {
      expect(existsSync(join(context, needed)), needed).toBe(true);
    }
    for (const left of ['node_modules', 'batch', 'test', 'lib', '.git', 'cdk.out', 'functions/handlers/api.test.ts', 'functions/handlers/access-log.test.ts']) {
      expect(existsSync(join(context, left)), left).toBe(false);
    }
  });
});

describe('the data plane origin', () => {
  const functions = [acme.api, acme.chat, acme.jobLambdas.dispatcher, acme.jobLambdas.jobEvents, acme.jobLambdas.reconciler].map((fn) => idOf(fn.function));
  const origin = 'https://loops.acme.example';

  it("reaches every function that builds Loops base URLs or starts trainers, and the container, as BAKEHOUSE_DATA_PLANE_URL", () => {
    for (const id of functions) {
      expect(resources[id]!.Properties.Environment.Variables.BAKEHOUSE_DATA_PLANE_URL, id).toBe(origin);
    }
    expect(container().Environment).toEqual(expect.arrayContaining([{ Name: 'BAKEHOUSE_DATA_PLANE_URL', Value: origin }, { Name: 'PORT', Value: '8080' }]));
  });

  it("configures the container as the API functions are configured (the same table, bucket, queues and Batch names), without the admin key", () => {
    const apiVariables = resources[idOf(acme.chat.function)]!.Properties.Environment.Variables as Record<string, Json>;
    const { NODE_OPTIONS: _lambdaOnly, ...shared } = apiVariables;
    const containerVariables = Object.fromEntries((container().Environment as { Name: string; Value: Json }[]).map(({ Name, Value }) => [Name, Value]));
    expect(containerVariables).toEqual({ ...shared, PORT: '8080' });
    expect(containerVariables.ADMIN_KEY_SECRET_ARN).toBeUndefined();
  });

  it('is the load balancer name over HTTP in a test deployment', () => {
    const scratchResources = scratchTemplate.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, Json> }>;
    const balancer = idOf(scratch.dataPlane!.loadBalancer);
    expect(scratchResources[idOf(scratch.api.function)]!.Properties.Environment.Variables.BAKEHOUSE_DATA_PLANE_URL).toEqual({
      'Fn::Join': ['', ['http://', { 'Fn::GetAtt': [balancer, 'DNSName'] }]],
    });
  });

  it('is published with the name a CNAME should point at', () => {
    template.hasOutput('DataPlaneUrl', { Value: origin });
    template.hasOutput('DataPlaneDomainTarget', { Value: { 'Fn::GetAtt': [ids.loadBalancer, 'DNSName'] } });
    scratchTemplate.hasOutput('DataPlaneUrl', {});
    expect(Object.keys(scratchTemplate.toJSON().Outputs)).not.toContain('DataPlaneDomainTarget');
  });

  it('alarms when the data plane keeps answering with 5xx, its own or the load balancer’s', () => {
    const alarms = only('AWS::CloudWatch::Alarm').filter(([id]) => id.includes('DataPlane5xx'));
    expect(alarms).toHaveLength(1);
    const metrics = JSON.stringify(alarms[0]![1].Properties.Metrics);
    expect(metrics).toContain('HTTPCode_Target_5XX_Count');
    expect(metrics).toContain('HTTPCode_ELB_5XX_Count');
  });
});

describe('trainers on Batch', () => {
  it('run on the GPU lane, which scales to zero', () => {
    expect(resources[ids.gpuEnvironment]!.Properties.ComputeResources).toEqual(expect.objectContaining({ MinvCpus: 0 }));
    expect(resources[ids.gpuQueue]!.Properties.ComputeEnvironmentOrder).toEqual([{ ComputeEnvironment: { 'Fn::GetAtt': [ids.gpuEnvironment, 'ComputeEnvironmentArn'] }, Order: 1 }]);
    expect(resources[ids.gpuJobs]!.Properties.Type).toBe('container');
  });

  it('reach the data plane at its public name: public subnets, outbound open, and the listener open to them', () => {
    expect(resources[ids.gpuEnvironment]!.Properties.ComputeResources.SecurityGroupIds).toEqual([{ 'Fn::GetAtt': [ids.engineGroup, 'GroupId'] }]);
    expect(resources[ids.engineGroup]!.Properties.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' })]);
    const subnets = resources[ids.gpuEnvironment]!.Properties.ComputeResources.Subnets as { Ref: string }[];
    for (const subnet of subnets) expect(resources[subnet.Ref]!.Properties.MapPublicIpOnLaunch).toBe(true);
  });

  it('save checkpoints and state where the engine may write, and the APIs may list, download and delete them', () => {
    const run = 'run-1';
    for (const prefix of [checkpointPrefix({ runId: run, target: 'trainer', name: 'step-1' }), checkpointPrefix({ runId: run, target: 'sampler', name: 'step-1' }), runStatePrefix(run)]) {
      expect(prefix.startsWith(ArtifactBucket.TRAINING_PREFIX), prefix).toBe(true);
    }
    const bucket = idOf(acme.artifacts.bucket);
    // Statements with the same actions are merged, so a statement may name several prefixes.
    const allowed = (role: string, prefix: string) => {
      const objects = JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${prefix}*`]] });
      return statementsOf(template.toJSON() as Parameters<typeof statementsOf>[0], role)
        .filter((statement) => [statement.Resource].flat().some((resource) => JSON.stringify(resource) === objects))
        .flatMap((statement) => [statement.Action].flat())
        .sort();
    };
    expect(allowed(idOf(acme.engine.jobRole), 'training/')).toEqual(['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject']);
    for (const role of [ids.apiRole, ids.chatRole, ids.taskRole]) {
      expect(allowed(role, 'training/'), role).toEqual(['s3:DeleteObject', 's3:GetObject']);
      expect(allowed(role, 'tmp/training/'), role).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:PutObject']);
    }
  });
});

describe('the task role', () => {
  const json = template.toJSON() as Parameters<typeof statementsOf>[0];
  const withoutLogsAndTraces = (statements: PolicyStatement[]) =>
    statements.filter((statement) => ![statement.Action].flat().some((action) => action.startsWith('logs:') || action.startsWith('xray:')));

  it('has exactly the grants of the chat API: every route, no admin key', () => {
    const task = statementsOf(json, ids.taskRole);
    expect(task.length).toBeGreaterThan(0);
    expect(task).toEqual(withoutLogsAndTraces(statementsOf(json, ids.chatRole)));
    const actions = [...new Set(task.flatMap((statement) => [statement.Action].flat()))].sort();
    expect(actions).toEqual(
      [
        'batch:TerminateJob',
        'dynamodb:ConditionCheckItem',
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        's3:DeleteObject',
        's3:GetObject',
        's3:ListBucket',
        's3:PutObject',
        'sqs:SendMessage',
      ].sort(),
    );
  });

  it('grants nothing on every resource', () => {
    expect(statementsOf(json, ids.taskRole).filter((statement) => statement.Resource === '*')).toEqual([]);
  });

  it('leaves pulling the image and writing logs to the execution role', () => {
    const execution = idOf(dataPlane.taskDefinition.executionRole!);
    const actions = [...new Set(statementsOf(json, execution).flatMap((statement) => [statement.Action].flat()))].sort();
    expect(actions).toEqual(
      ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetAuthorizationToken', 'ecr:GetDownloadUrlForLayer', 'logs:CreateLogStream', 'logs:PutLogEvents'].sort(),
    );
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, type CfnResource } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { JobLambdas } from '../../lib/constructs/job-lambdas.ts';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { actionsOf, cdkApp, statementsAllowing, statementsOf, tenantConfig } from './support.ts';

// One app (one synth), two tenants: a protected production tenant with its own domain and alarm
// email on on-demand GPUs, and a throwaway one on spot GPUs with every optional knob turned.
const CERTIFICATE_ARN = 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789';
const app = cdkApp();
const acme = new TenantStack(app, 'Bakehouse-acme', {
  tenant: tenantConfig({
    tenantId: 'acme',
    account: '123456789012',
    alarmEmail: 'ops@acme.example',
    domain: { name: 'bread.acme.example', certificateArn: CERTIFICATE_ARN },
  }),
});
const scratch = new TenantStack(app, 'Bakehouse-scratch', {
  tenant: tenantConfig({
    tenantId: 'scratch',
    deletionProtection: false,
    gpu: { instanceTypes: ['g6e.xlarge', 'g5.2xlarge'], maxVcpus: 64, spot: true, jobVcpus: 8, jobMemoryMiB: 28_672 },
    cpu: { maxVcpus: 4 },
    baseModels: ['bakehouse/toy-instruct', 'Qwen/Qwen3-8B'],
    defaultBaseModel: 'bakehouse/toy-instruct',
    samplerIdleMinutes: 3,
    datasetUriPrefixes: ['s3://shared-datasets/questions/'],
    api: { reservedConcurrency: 20, logRetentionDays: 7 },
  }),
});
const template = Template.fromStack(acme);
const scratchTemplate = Template.fromStack(scratch);
// Template JSON is untyped; the assertions below are what check its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, Json> }>;

/** The logical id of a construct's CloudFormation resource. */
function idOf(construct: IConstruct): string {
  const resource = (construct.node.defaultChild ?? construct) as CfnResource;
  return Stack.of(construct).getLogicalId(resource);
}

const ids = {
  table: idOf(acme.table.table),
  bucket: idOf(acme.artifacts.bucket),
  accessLogs: idOf(acme.artifacts.accessLogs),
  jobQueue: idOf(acme.jobQueue.queue),
  jobDeadLetters: idOf(acme.jobQueue.deadLetterQueue),
  eventDeadLetters: idOf(acme.jobLambdas.eventDeadLetters),
  adminKey: idOf(acme.secrets.adminKey),
  llmKeys: idOf(acme.engineSecrets.llmApiKeys),
  hubToken: idOf(acme.engineSecrets.hubToken),
  api: idOf(acme.api.function),
  apiRole: idOf(acme.api.role),
  apiLogs: idOf(acme.api.logGroup),
  apiUrl: idOf(acme.api.url),
  chat: idOf(acme.chat.function),
  chatRole: idOf(acme.chat.role),
  chatLogs: idOf(acme.chat.logGroup),
  chatUrl: idOf(acme.chat.url),
  dispatcher: idOf(acme.jobLambdas.dispatcher.function),
  dispatcherRole: idOf(acme.jobLambdas.dispatcher.role),
  jobEvents: idOf(acme.jobLambdas.jobEvents.function),
  jobEventsRole: idOf(acme.jobLambdas.jobEvents.role),
  reconciler: idOf(acme.jobLambdas.reconciler.function),
  reconcilerRole: idOf(acme.jobLambdas.reconciler.role),
  webhookQueue: idOf(acme.webhookDelivery.queue),
  webhookDeadLetters: idOf(acme.webhookDelivery.deadLetterQueue),
  deliverer: idOf(acme.webhookDelivery.deliverer.function),
  delivererRole: idOf(acme.webhookDelivery.deliverer.role),
  gpuQueue: idOf(acme.engine.gpu.jobQueue),
  cpuQueue: idOf(acme.engine.cpu.jobQueue),
  gpuJobs: idOf(acme.engine.gpu.jobDefinition),
  cpuJobs: idOf(acme.engine.cpu.jobDefinition),
  gpuEnvironment: idOf(acme.engine.gpu.computeEnvironment),
  cpuEnvironment: idOf(acme.engine.cpu.computeEnvironment),
  jobRole: idOf(acme.engine.jobRole),
  gpuExecutionRole: idOf(acme.engine.gpu.executionRole),
  cpuExecutionRole: idOf(acme.engine.cpu.executionRole),
  engineLogs: idOf(acme.engine.logGroup),
  topic: idOf(acme.alarms.topic),
};

const arn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const jobFiles = { 'Fn::Join': ['', [arn(ids.bucket), '/jobs/*']] };
const chatBodies = { 'Fn::Join': ['', [arn(ids.bucket), '/tmp/chat/*']] };
const trainingFiles = { 'Fn::Join': ['', [arn(ids.bucket), '/training/*']] };
const trainingBodies = { 'Fn::Join': ['', [arn(ids.bucket), '/tmp/training/*']] };
const batchJobs = 'arn:aws:batch:eu-west-1:123456789012:job/*';
const queueArns = [
  { 'Fn::GetAtt': [ids.gpuQueue, 'JobQueueArn'] },
  { 'Fn::GetAtt': [ids.cpuQueue, 'JobQueueArn'] },
];
const STORE = ['dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'];
const LOGS_AND_TRACES = ['logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'];

describe('TenantStack', () => {
  it('is named after the tenant and deploys where its config says', () => {
    expect(acme.stackName).toBe('Bakehouse-acme');
    expect(acme.region).toBe('eu-west-1');
    expect(acme.account).toBe('123456789012');
    expect(acme.terminationProtection).toBe(true);
    expect(scratch.terminationProtection).toBe(false);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Tags: Match.arrayWith([{ Key: 'bakehouse:tenant', Value: 'acme' }]),
    });
  });

  it('spreads over two availability zones without asking the account which exist', () => {
    const azs = Object.values(resources)
      .filter((resource) => resource.Type === 'AWS::EC2::Subnet')
      .map((subnet) => subnet.Properties.AvailabilityZone);
    expect(azs).toEqual([
      { 'Fn::Select': [0, { 'Fn::GetAZs': '' }] },
      { 'Fn::Select': [1, { 'Fn::GetAZs': '' }] },
    ]);
  });

  it('publishes what an operator needs', () => {
    template.hasOutput('ApiUrl', { Value: 'https://bread.acme.example' });
    template.hasOutput('ApiDomainTarget', { Value: { 'Fn::GetAtt': [Match.anyValue(), 'RegionalDomainName'] } });
    const baseUrlOf = (urlId: Json) => ({
      'Fn::Join': ['', ['https://', { 'Fn::Select': [2, { 'Fn::Split': ['/', { 'Fn::GetAtt': [urlId, 'FunctionUrl'] }] }] }]],
    });
    const functionBaseUrl = baseUrlOf(ids.apiUrl);
    template.hasOutput('FunctionUrl', { Value: functionBaseUrl });
    // Chat clients always use the streaming Function URL: API Gateway would buffer the reply.
    template.hasOutput('ChatUrl', { Value: baseUrlOf(ids.chatUrl) });
    template.hasOutput('AdminKeySecretArn', { Value: { Ref: ids.adminKey } });
    template.hasOutput('LlmApiKeysSecretArn', { Value: { Ref: ids.llmKeys } });
    template.hasOutput('HubTokenSecretArn', { Value: { Ref: ids.hubToken } });
    template.hasOutput('ArtifactBucketName', { Value: { Ref: ids.bucket } });
    template.hasOutput('AlarmTopicArn', { Value: { Ref: ids.topic } });
    // Without a custom domain, the Function URL is the API's address.
    scratchTemplate.hasOutput('ApiUrl', { Value: functionBaseUrl });
    scratchTemplate.hasOutput('ChatUrl', { Value: baseUrlOf(ids.chatUrl) });
    expect(Object.keys(scratchTemplate.findOutputs('ApiDomainTarget'))).toEqual([]);
  });
});

describe('ItemTable', () => {
  it('is the Store single table: pk/sk, gsi1 projecting all, TTL on ttl', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'gsi1',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    });
  });

  it('bills on demand, keeps point-in-time recovery and encrypts under the AWS-managed key', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    expect(resources[ids.table]!.Properties.SSESpecification).toEqual({ SSEEnabled: true });
  });

  it('is protected and retained unless the tenant opts out', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    scratchTemplate.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
      DeletionPolicy: 'Delete',
    });
  });
});

describe('secrets', () => {
  it('has CloudFormation generate the admin key', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        Description: Match.stringLikeRegexp('admin API key'),
        GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true, IncludeSpace: false },
      },
      DeletionPolicy: 'Retain',
    });
  });

  it('creates the engine secrets with every field present and empty, for the operator to fill in', () => {
    expect(JSON.parse(resources[ids.llmKeys]!.Properties.SecretString as string)).toEqual({
      ANTHROPIC_API_KEY: '',
      OPENAI_API_KEY: '',
      OPENAI_BASE_URL: '',
    });
    expect(JSON.parse(resources[ids.hubToken]!.Properties.SecretString as string)).toEqual({ HF_TOKEN: '' });
  });

  it('retains every secret unless the tenant opts out', () => {
    expect(Object.values(template.findResources('AWS::SecretsManager::Secret')).map((secret) => secret.DeletionPolicy)).toEqual([
      'Retain',
      'Retain',
      'Retain',
    ]);
    expect(Object.values(scratchTemplate.findResources('AWS::SecretsManager::Secret')).map((secret) => secret.DeletionPolicy)).toEqual([
      'Delete',
      'Delete',
      'Delete',
    ]);
  });
});

describe('ArtifactBucket', () => {
  it('encrypts, blocks public access, logs access and expires temporary objects', () => {
    expect(resources[ids.bucket]!.Properties).toEqual(
      expect.objectContaining({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LoggingConfiguration: { DestinationBucketName: { Ref: ids.accessLogs }, LogFilePrefix: 'artifacts/' },
        LifecycleConfiguration: {
          Rules: [
            { Id: 'expire-tmp', Prefix: 'tmp/', ExpirationInDays: 1, Status: 'Enabled' },
            { Id: 'abort-incomplete-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
          ],
        },
      }),
    );
    expect(resources[ids.bucket]!.Properties.VersioningConfiguration).toBeUndefined();
  });

  it('refuses requests without TLS, on both buckets', () => {
    for (const bucket of [ids.bucket, ids.accessLogs]) {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: bucket },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });

  it('keeps its objects when protected, and empties itself on the way out otherwise', () => {
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
    expect(Object.keys(template.findResources('Custom::S3AutoDeleteObjects'))).toEqual([]);
    expect(Object.keys(scratchTemplate.findResources('Custom::S3AutoDeleteObjects'))).toHaveLength(2);
  });
});

describe('JobQueue', () => {
  it('hides a message for six dispatcher timeouts and dead-letters it after five receives', () => {
    const queue = resources[ids.jobQueue]!.Properties;
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * JobLambdas.DISPATCHER_TIMEOUT.toSeconds());
    expect(queue.RedrivePolicy).toEqual({ deadLetterTargetArn: arn(ids.jobDeadLetters), maxReceiveCount: 5 });
    expect(queue.SqsManagedSseEnabled).toBe(true);
  });

  it('gives every queue that is not itself a dead-letter queue a redrive policy', () => {
    const json = JSON.stringify(resources);
    const queues = Object.keys(template.findResources('AWS::SQS::Queue'));
    // A dead-letter queue: named by a redrive policy, a function's DeadLetterConfig or a rule target's.
    const deadLetterQueues = queues.filter((id) =>
      [`"deadLetterTargetArn":{"Fn::GetAtt":["${id}","Arn"]}`, `"TargetArn":{"Fn::GetAtt":["${id}","Arn"]}`, `"DeadLetterConfig":{"Arn":{"Fn::GetAtt":["${id}","Arn"]}}`].some(
        (reference) => json.includes(reference),
      ),
    );
    expect(deadLetterQueues.sort()).toEqual([ids.eventDeadLetters, ids.jobDeadLetters, ids.webhookDeadLetters].sort());
    const others = queues.filter((id) => !deadLetterQueues.includes(id));
    expect(others.sort()).toEqual([ids.jobQueue, ids.webhookQueue].sort());
    for (const id of others) expect(resources[id]!.Properties.RedrivePolicy, id).toBeDefined();
    for (const id of queues) expect(resources[id]!.Properties.SqsManagedSseEnabled, id).toBe(true);
  });
});

describe('functions', () => {
  it('runs the bundled handlers on Node.js 22, ARM64, traced, with the runtime configuration', () => {
    const environment = {
      TABLE_NAME: { Ref: ids.table },
      ARTIFACT_BUCKET: { Ref: ids.bucket },
      JOB_QUEUE_URL: { Ref: ids.jobQueue },
      WEBHOOK_DELIVERY_QUEUE_URL: { Ref: ids.webhookQueue },
      BATCH_GPU_QUEUE: queueArns[0],
      BATCH_CPU_QUEUE: queueArns[1],
      BATCH_GPU_JOB_DEFINITION: { Ref: ids.gpuJobs },
      BATCH_CPU_JOB_DEFINITION: { Ref: ids.cpuJobs },
      NODE_OPTIONS: '--enable-source-maps',
    };
    for (const [id, timeout, extra] of [
      [ids.api, 29, { ADMIN_KEY_SECRET_ARN: { Ref: ids.adminKey } }],
      // A streamed reply may wait for a sampler to start; the chat API never installs the admin key.
      [ids.chat, 900, {}],
      [ids.dispatcher, JobLambdas.DISPATCHER_TIMEOUT.toSeconds(), {}],
      [ids.jobEvents, 30, {}],
      [ids.reconciler, 300, {}],
      [ids.deliverer, 60, {}],
    ] as const) {
      expect(resources[id]!.Properties, id).toEqual(
        expect.objectContaining({
          Runtime: 'nodejs22.x',
          Architectures: ['arm64'],
          Handler: 'index.handler',
          Timeout: timeout,
          TracingConfig: { Mode: 'Active' },
          Environment: { Variables: { ...environment, ...extra } },
        }),
      );
    }
  });

  it('passes the configured base models, and otherwise lets the code choose', () => {
    scratchTemplate.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ BAKEHOUSE_BASE_MODELS: 'bakehouse/toy-instruct,Qwen/Qwen3-8B' }) },
    });
    expect(JSON.stringify(resources)).not.toContain('BAKEHOUSE_BASE_MODELS');
  });

  it('passes the configured default base model to every function, and otherwise lets the code choose', () => {
    const functions = scratchTemplate.findResources('AWS::Lambda::Function');
    const apis = Object.values(functions).filter((fn) => fn.Properties.Environment?.Variables?.TABLE_NAME);
    expect(apis.length).toBeGreaterThanOrEqual(5);
    for (const fn of apis) expect(fn.Properties.Environment.Variables.BAKEHOUSE_DEFAULT_BASE_MODEL).toBe('bakehouse/toy-instruct');
    expect(JSON.stringify(resources)).not.toContain('BAKEHOUSE_DEFAULT_BASE_MODEL');
  });

  it('passes the configured sampler idle time in seconds, and otherwise lets the code choose', () => {
    scratchTemplate.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ BAKEHOUSE_SAMPLER_IDLE_SECONDS: '180' }) },
    });
    expect(JSON.stringify(resources)).not.toContain('BAKEHOUSE_SAMPLER_IDLE_SECONDS');
  });

  it('gives both APIs 1 GiB, reserves concurrency only when asked, and keeps logs as configured', () => {
    for (const [id, logs] of [
      [ids.api, ids.apiLogs],
      [ids.chat, ids.chatLogs],
    ] as const) {
      expect(resources[id]!.Properties.MemorySize, id).toBe(1024);
      expect(resources[id]!.Properties.ReservedConcurrentExecutions, id).toBeUndefined();
      expect(resources[id]!.Properties.LoggingConfig, id).toEqual({ LogGroup: { Ref: logs } });
    }
    // The tenant's reserved concurrency applies to each API.
    const scratchResources = scratchTemplate.toJSON().Resources as Record<string, { Properties: Record<string, Json> }>;
    for (const fn of [scratch.api.function, scratch.chat.function]) {
      expect(scratchResources[idOf(fn)]!.Properties.ReservedConcurrentExecutions, idOf(fn)).toBe(20);
    }
    template.hasResource('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 30 }, DeletionPolicy: 'Retain' });
    scratchTemplate.hasResource('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 7 }, DeletionPolicy: 'Delete' });
  });

  it('serves the API buffered and chat streamed, each on a Function URL without IAM auth (the app checks API keys itself)', () => {
    const urls = template.findResources('AWS::Lambda::Url');
    expect(Object.keys(urls).sort()).toEqual([ids.apiUrl, ids.chatUrl].sort());
    expect(urls[ids.apiUrl]!.Properties).toEqual({ AuthType: 'NONE', InvokeMode: 'BUFFERED', TargetFunctionArn: arn(ids.api) });
    expect(urls[ids.chatUrl]!.Properties).toEqual({ AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM', TargetFunctionArn: arn(ids.chat) });
  });

  it('dispatches from the job queue, ten records at a time, five batches at once, reporting failed records alone', () => {
    // The other one feeds the webhook deliverer (test/cdk/webhooks.test.ts).
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arn(ids.jobQueue),
      FunctionName: { Ref: ids.dispatcher },
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 5 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it("applies Batch state changes from this tenant's job queues only, dead-lettering what cannot be delivered", () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.batch'],
        'detail-type': ['Batch Job State Change'],
        detail: { jobQueue: queueArns },
      },
      Targets: [{ Arn: arn(ids.jobEvents), DeadLetterConfig: { Arn: arn(ids.eventDeadLetters) }, Id: 'Target0' }],
    });
    expect(resources[ids.jobEvents]!.Properties.DeadLetterConfig).toEqual({ TargetArn: arn(ids.eventDeadLetters) });
  });

  it('reconciles every five minutes', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [{ Arn: arn(ids.reconciler), DeadLetterConfig: { Arn: arn(ids.eventDeadLetters) }, Id: 'Target0' }],
    });
    expect(resources[ids.reconciler]!.Properties.DeadLetterConfig).toEqual({ TargetArn: arn(ids.eventDeadLetters) });
  });

  it('bundles each handler as ESM without the embedded runtime or its native module', () => {
    for (const [id, handlers] of [
      // The buffered API installs the admin key from its secret on a cold start; both APIs log each
      // request and hand out the Loops origins.
      [ids.api, ['access-log', 'admin-key', 'api', 'loops-origins', 'runtime']],
      [ids.chat, ['access-log', 'chat', 'loops-origins', 'runtime']],
      [ids.dispatcher, ['dispatch', 'runtime']],
      [ids.jobEvents, ['job-events', 'runtime']],
      [ids.reconciler, ['reconcile', 'runtime']],
    ] as const) {
      const key = resources[id]!.Properties.Code.S3Key as string;
      const asset = join(app.outdir, `asset.${key.replace(/\.zip$/, '')}`);
      const bundle = readFileSync(join(asset, 'index.mjs'), 'utf8');
      const { sources } = JSON.parse(readFileSync(join(asset, 'index.mjs.map'), 'utf8')) as { sources: string[] };
      const bundled = sources.flatMap((source) => /functions\/handlers\/([^/]+)\.ts$/.exec(source)?.slice(1) ?? []);
      expect(bundled.sort(), id).toEqual([...handlers]);
      expect(bundle.startsWith("import { createRequire as __bakehouseRequire } from 'node:module';"), id).toBe(true);
      expect(bundle, id).toMatch(/export\s*\{[^}]*\bas handler\b[^}]*\}/);
      expect(bundle.includes('GetSecretValue'), id).toBe(id === ids.api);
      // Both APIs write their access log through Powertools Logger.
      expect(bundle.includes('function_request_id'), id).toBe(id === ids.api || id === ids.chat);
      // hono's streamHandle wraps the app in the runtime's awslambda.streamifyResponse.
      expect(bundle.includes('streamifyResponse'), id).toBe(id === ids.chat);
      expect(bundle, id).not.toContain('better-sqlite3');
      expect(bundle, id).not.toContain('SqliteStore');
    }
  });
});

describe('ApiDomain', () => {
  it('serves the API on the custom domain through an HTTP API, and only there', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP', DisableExecuteApiEndpoint: true });
    template.hasResourceProperties('AWS::ApiGatewayV2::DomainName', {
      DomainName: 'bread.acme.example',
      DomainNameConfigurations: [Match.objectLike({ CertificateArn: CERTIFICATE_ARN, EndpointType: 'REGIONAL' })],
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      IntegrationUri: arn(ids.api),
      PayloadFormatVersion: '2.0',
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
    });
    template.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 1);
    scratchTemplate.resourceCountIs('AWS::ApiGatewayV2::Api', 0);
  });
});

describe('BatchNetwork', () => {
  it('uses public subnets without NAT, an S3 gateway endpoint and an ingress-free security group', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.anyValue() });
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
    const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup'));
    expect(groups).toHaveLength(1);
    expect(groups[0]!.Properties.SecurityGroupIngress).toBeUndefined();
  });
});

describe('EngineBatch', () => {
  it('runs GPU jobs on the configured instance types, on demand or spot, with the GPU AMI', () => {
    expect(resources[ids.gpuEnvironment]!.Properties.ComputeResources).toEqual(
      expect.objectContaining({
        Type: 'EC2',
        AllocationStrategy: 'BEST_FIT_PROGRESSIVE',
        InstanceTypes: ['g6e.xlarge'],
        MinvCpus: 0,
        MaxvCpus: 8,
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
      }),
    );
    scratchTemplate.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({
        Type: 'SPOT',
        AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
        InstanceTypes: ['g6e.xlarge', 'g5.2xlarge'],
        MaxvCpus: 64,
      }),
    });
  });

  it('launches GPU instances with IMDSv2 only and an encrypted root volume', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: 'required' },
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeSize: 200, VolumeType: 'gp3' } }],
      }),
    });
  });

  it('runs stim jobs on Fargate', () => {
    expect(resources[ids.cpuEnvironment]!.Properties.ComputeResources).toEqual(expect.objectContaining({ Type: 'FARGATE', MaxvCpus: 16 }));
    scratchTemplate.hasResourceProperties('AWS::Batch::ComputeEnvironment', { ComputeResources: Match.objectLike({ Type: 'FARGATE', MaxvCpus: 4 }) });
  });

  it('queues each lane on its own environment and cancels jobs no instance could ever run', () => {
    for (const [queue, environment] of [
      [ids.gpuQueue, ids.gpuEnvironment],
      [ids.cpuQueue, ids.cpuEnvironment],
    ] as const) {
      expect(resources[queue]!.Properties).toEqual(
        expect.objectContaining({
          ComputeEnvironmentOrder: [{ ComputeEnvironment: { 'Fn::GetAtt': [environment, 'ComputeEnvironmentArn'] }, Order: 1 }],
          JobStateTimeLimitActions: [
            expect.objectContaining({ Action: 'CANCEL', Reason: 'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT' }),
            expect.objectContaining({ Action: 'CANCEL', Reason: 'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE' }),
          ],
        }),
      );
    }
  });

  it('retries a job only when Batch lost its host, never on the engine failing, and times attempts out', () => {
    const retryStrategy = {
      Attempts: 3,
      EvaluateOnExit: [
        { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
        { Action: 'EXIT', OnReason: '*' },
      ],
    };
    expect(resources[ids.gpuJobs]!.Properties).toEqual(
      expect.objectContaining({ RetryStrategy: retryStrategy, Timeout: { AttemptDurationSeconds: 24 * 3600 }, PropagateTags: true }),
    );
    expect(resources[ids.cpuJobs]!.Properties).toEqual(
      expect.objectContaining({ RetryStrategy: retryStrategy, Timeout: { AttemptDurationSeconds: 4 * 3600 }, PropagateTags: true }),
    );
  });

  it('gives a GPU job one GPU and the configured vCPUs and memory, the hub token, and the job role', () => {
    const container = resources[ids.gpuJobs]!.Properties.ContainerProperties;
    expect(resources[ids.gpuJobs]!.Properties.PlatformCapabilities).toEqual(['EC2']);
    expect(container.ResourceRequirements).toEqual([
      { Type: 'MEMORY', Value: '14336' },
      { Type: 'VCPU', Value: '4' },
      { Type: 'GPU', Value: '1' },
    ]);
    expect(container.Environment).toEqual([{ Name: 'BAKEHOUSE_HUB_ACCESS', Value: '1' }]);
    expect(container.Secrets).toEqual([{ Name: 'HF_TOKEN', ValueFrom: { 'Fn::Join': ['', [{ Ref: ids.hubToken }, ':HF_TOKEN::']] } }]);
    expect(container.JobRoleArn).toEqual(arn(ids.jobRole));
    expect(container.ExecutionRoleArn).toEqual(arn(ids.gpuExecutionRole));
    expect(container.LogConfiguration.Options['awslogs-group']).toEqual({ Ref: ids.engineLogs });
    scratchTemplate.hasResourceProperties('AWS::Batch::JobDefinition', {
      ContainerProperties: Match.objectLike({
        ResourceRequirements: [
          { Type: 'MEMORY', Value: '28672' },
          { Type: 'VCPU', Value: '8' },
          { Type: 'GPU', Value: '1' },
        ],
      }),
    });
  });

  it('gives a stim job the LLM credentials and a public address on Fargate', () => {
    const container = resources[ids.cpuJobs]!.Properties.ContainerProperties;
    expect(resources[ids.cpuJobs]!.Properties.PlatformCapabilities).toEqual(['FARGATE']);
    expect(container.NetworkConfiguration).toEqual({ AssignPublicIp: 'ENABLED' });
    expect(container.Secrets).toEqual(
      ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'OPENAI_BASE_URL'].map((name) => ({
        Name: name,
        ValueFrom: { 'Fn::Join': ['', [{ Ref: ids.llmKeys }, `:${name}::`]] },
      })),
    );
    expect(container.JobRoleArn).toEqual(arn(ids.jobRole));
  });

  it('builds both images from batch/ at deploy time, for linux/amd64, leaving local state out of the context', () => {
    const assets = JSON.parse(readFileSync(join(app.outdir, `${acme.artifactId}.assets.json`), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string } }>;
    };
    const images = Object.entries(assets.dockerImages).map(([hash, image]) => ({ hash, ...image.source }));
    expect(images.map(({ dockerFile, platform }) => ({ dockerFile, platform })).sort((a, b) => a.dockerFile.localeCompare(b.dockerFile))).toEqual([
      { dockerFile: 'engine/Dockerfile', platform: 'linux/amd64' },
      { dockerFile: 'engine/Dockerfile.cpu', platform: 'linux/amd64' },
    ]);
    for (const image of images) {
      expect(container(image.hash)).toBe(true);
      const context = join(app.outdir, image.directory);
      expect(existsSync(join(context, 'contract', 'job-spec.schema.json'))).toBe(true);
      expect(existsSync(join(context, 'engine', 'src', 'bakehouse_engine'))).toBe(true);
      expect(existsSync(join(context, 'engine', '.venv'))).toBe(false);
      expect(existsSync(join(context, 'engine', 'tests'))).toBe(false);
    }
    function container(hash: string): boolean {
      return JSON.stringify(resources).includes(`:${hash}`);
    }
  });
});

describe('Alarms', () => {
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((alarm) => alarm.Properties as Record<string, Json>);
  const byMetric = (name: string) => alarms.filter((alarm) => alarm.MetricName === name);

  it('notifies one SSL-only topic, with the alarm email subscribed where configured', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@acme.example', TopicArn: { Ref: ids.topic } });
    scratchTemplate.resourceCountIs('AWS::SNS::Subscription', 0);
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([{ Ref: ids.topic }]);
      expect(alarm.TreatMissingData).toBe('notBreaching');
    }
  });

  it('watches every dead-letter queue for its first message', () => {
    expect(byMetric('ApproximateNumberOfMessagesVisible').map((alarm) => [alarm.Dimensions, alarm.Threshold])).toEqual([
      [[{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.jobDeadLetters, 'QueueName'] } }], 1],
      [[{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.eventDeadLetters, 'QueueName'] } }], 1],
      [[{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.webhookDeadLetters, 'QueueName'] } }], 1],
    ]);
  });

  it("watches both APIs' 5xx answers, on their Function URLs and the custom domain, and every function's errors", () => {
    expect(byMetric('Url5xxCount').map((alarm) => [alarm.Namespace, alarm.Dimensions, alarm.Threshold])).toEqual(
      [ids.api, ids.chat].map((id) => ['AWS/Lambda', [{ Name: 'FunctionName', Value: { Ref: id } }], 5]),
    );
    expect(byMetric('Url5xxCount').map((alarm) => alarm.AlarmDescription)).toEqual([
      expect.stringMatching(/^The API keeps answering with 5xx errors/),
      expect.stringMatching(/^The chat API keeps answering with 5xx errors/),
    ]);
    expect(byMetric('5xx')).toHaveLength(1);
    expect(byMetric('Errors').map((alarm) => alarm.Dimensions)).toEqual(
      [ids.api, ids.chat, ids.dispatcher, ids.jobEvents, ids.reconciler, ids.deliverer].map((id) => [{ Name: 'FunctionName', Value: { Ref: id } }]),
    );
  });

  it("counts this tenant's failed Batch jobs with a rule of its own", () => {
    const [failed] = byMetric('TriggeredRules');
    expect(failed).toEqual(expect.objectContaining({ Namespace: 'AWS/Events', Statistic: 'Sum', Period: 3600, Threshold: 3 }));
    const ruleId = (failed!.Dimensions[0].Value as { Ref: string }).Ref;
    expect(resources[ruleId]!.Properties.EventPattern).toEqual({
      source: ['aws.batch'],
      'detail-type': ['Batch Job State Change'],
      detail: { jobQueue: queueArns, status: ['FAILED'] },
    });
    expect(resources[ruleId]!.Properties.Targets).toBeUndefined();
  });
});

describe('least privilege', () => {
  const json = template.toJSON() as Parameters<typeof actionsOf>[0];

  it('gives each function exactly the calls its code makes', () => {
    expect(actionsOf(json, ids.apiRole)).toEqual(
      [
        ...LOGS_AND_TRACES,
        ...STORE,
        'secretsmanager:DescribeSecret',
        'secretsmanager:GetSecretValue',
        's3:DeleteObject',
        's3:GetObject',
        's3:ListBucket',
        's3:PutObject',
        'sqs:SendMessage',
        'batch:TerminateJob',
      ].sort(),
    );
    // Every route of the API, without the admin key.
    expect(actionsOf(json, ids.chatRole)).toEqual(
      [
        ...LOGS_AND_TRACES,
        ...STORE,
        's3:DeleteObject',
        's3:GetObject',
        's3:ListBucket',
        's3:PutObject',
        'sqs:SendMessage',
        'batch:TerminateJob',
      ].sort(),
    );
    expect(actionsOf(json, ids.dispatcherRole)).toEqual(
      [
        ...LOGS_AND_TRACES,
        ...STORE,
        's3:GetObject',
        's3:ListBucket',
        'batch:SubmitJob',
        'batch:TagResource',
        'batch:TerminateJob',
        // Webhook deliveries of the events a failed submission publishes.
        'sqs:SendMessage',
        // The SQS event source's own grant.
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ].sort(),
    );
    // Following a trainer's end may delete the bodies it left and start the next trainer.
    expect(actionsOf(json, ids.jobEventsRole)).toEqual(
      [...LOGS_AND_TRACES, ...STORE, 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'sqs:SendMessage'].sort(),
    );
    expect(actionsOf(json, ids.reconcilerRole)).toEqual(
      [
        ...LOGS_AND_TRACES,
        ...STORE,
        's3:DeleteObject',
        's3:GetObject',
        's3:ListBucket',
        's3:PutObject',
        'sqs:SendMessage',
        'batch:DescribeJobs',
        'batch:TerminateJob',
      ].sort(),
    );
  });

  it('keeps item access to this table and its one index', () => {
    for (const role of [ids.apiRole, ids.chatRole, ids.dispatcherRole, ids.jobEventsRole, ids.reconcilerRole]) {
      expect(statementsAllowing(json, role, 'dynamodb:Query').map((statement) => statement.Resource)).toEqual([
        [arn(ids.table), { 'Fn::Join': ['', [arn(ids.table), '/index/gsi1']] }],
      ]);
    }
  });

  it('keeps object access under the prefixes of this bucket each role works in, and listing to this bucket', () => {
    const prefixes = new Map([
      [JSON.stringify(jobFiles), 'jobs/*'],
      [JSON.stringify(chatBodies), 'tmp/chat/*'],
      [JSON.stringify(trainingFiles), 'training/*'],
      [JSON.stringify(trainingBodies), 'tmp/training/*'],
    ]);
    /** Every object action the role is allowed, as `<action> <prefix>`: any other resource shows as JSON. */
    const objectAccess = (role: string) =>
      [
        ...new Set(
          statementsOf(json, role).flatMap((statement) => {
            const actions = [statement.Action].flat().filter((action) => /^s3:.*Object|Multipart/.test(action));
            const objects = [statement.Resource].flat().map((resource) => prefixes.get(JSON.stringify(resource)) ?? JSON.stringify(resource));
            return actions.flatMap((action) => objects.map((object) => `${action} ${object}`));
          }),
        ),
      ].sort();
    const on = (prefix: string, actions: string[]) => actions.map((action) => `${action} ${prefix}`);
    const readWriteDelete = ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'];
    // Training checkpoints are downloaded and deleted by the APIs, written by the engine.
    const training = [...on('training/*', ['s3:DeleteObject', 's3:GetObject']), ...on('tmp/training/*', readWriteDelete)];
    const trainerEnds = on('training/*', ['s3:DeleteObject']).concat(on('tmp/training/*', ['s3:DeleteObject']));
    for (const [role, expected] of [
      // Chat request bodies too large for a Store item, under tmp/chat/ (expired after a day),
      // and training operations' large bodies and results under tmp/training/.
      [ids.apiRole, [...on('jobs/*', readWriteDelete), ...on('tmp/chat/*', readWriteDelete), ...training]],
      [ids.chatRole, [...on('jobs/*', readWriteDelete), ...on('tmp/chat/*', readWriteDelete), ...training]],
      [ids.dispatcherRole, on('jobs/*', ['s3:GetObject'])],
      [ids.jobEventsRole, [...on('jobs/*', ['s3:GetObject', 's3:PutObject']), ...trainerEnds]],
      [ids.reconcilerRole, [...on('jobs/*', ['s3:DeleteObject', 's3:GetObject', 's3:PutObject']), ...trainerEnds]],
      [ids.jobRole, [...on('jobs/*', ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject']), ...on('training/*', ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'])]],
    ] as const) {
      expect(objectAccess(role), role).toEqual([...expected].sort());
      expect(statementsAllowing(json, role, 's3:ListBucket').map((statement) => statement.Resource), role).toEqual([arn(ids.bucket)]);
    }
  });

  it("sends only to this tenant's queues", () => {
    for (const role of [ids.apiRole, ids.chatRole]) {
      expect(statementsAllowing(json, role, 'sqs:SendMessage').map((statement) => statement.Resource), role).toEqual([[arn(ids.jobQueue), arn(ids.webhookQueue)]]);
    }
    expect(statementsAllowing(json, ids.reconcilerRole, 'sqs:SendMessage').map((statement) => statement.Resource)).toEqual([
      [arn(ids.jobQueue), arn(ids.eventDeadLetters), arn(ids.webhookQueue)],
    ]);
    expect(statementsAllowing(json, ids.jobEventsRole, 'sqs:SendMessage').map((statement) => statement.Resource)).toEqual([
      [arn(ids.jobQueue), arn(ids.eventDeadLetters), arn(ids.webhookQueue)],
    ]);
  });

  it("submits only to this tenant's Batch queues and job definitions, tagging with the job id alone", () => {
    expect(statementsAllowing(json, ids.dispatcherRole, 'batch:SubmitJob')).toEqual([
      {
        Effect: 'Allow',
        Action: 'batch:SubmitJob',
        Resource: [...queueArns, { Ref: ids.gpuJobs }, { Ref: ids.cpuJobs }].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      },
    ]);
    expect(statementsAllowing(json, ids.dispatcherRole, 'batch:TagResource')).toEqual([
      {
        Effect: 'Allow',
        Action: 'batch:TagResource',
        Resource: batchJobs,
        Condition: { 'ForAllValues:StringEquals': { 'aws:TagKeys': ['bakehouse:job-id'] } },
      },
    ]);
  });

  it('terminates only jobs Bakehouse tagged, and describes jobs (which takes no resource) only in the reconciler', () => {
    for (const role of [ids.apiRole, ids.chatRole, ids.dispatcherRole, ids.reconcilerRole]) {
      expect(statementsAllowing(json, role, 'batch:TerminateJob'), role).toEqual([
        {
          Effect: 'Allow',
          Action: 'batch:TerminateJob',
          Resource: batchJobs,
          Condition: { Null: { 'aws:ResourceTag/bakehouse:job-id': 'false' } },
        },
      ]);
    }
    expect(statementsAllowing(json, ids.reconcilerRole, 'batch:DescribeJobs').map((statement) => statement.Resource)).toEqual(['*']);
  });

  it('lets the engine read and write its job and training files and nothing else', () => {
    expect(actionsOf(json, ids.jobRole)).toEqual(['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
  });

  it('passes the allowed dataset folders to every function, and lets the engine read under them alone', () => {
    const scratchJson = scratchTemplate.toJSON() as Parameters<typeof actionsOf>[0];
    const functions = Object.values(scratchJson.Resources as Record<string, Json>).filter((r) => r.Type === 'AWS::Lambda::Function');
    const configured = functions.filter((fn) => fn.Properties.Environment?.Variables?.TABLE_NAME);
    expect(configured.length).toBeGreaterThanOrEqual(5);
    for (const fn of configured) expect(fn.Properties.Environment.Variables.BAKEHOUSE_DATASET_URI_PREFIXES).toBe('s3://shared-datasets/questions/');
    const jobRole = idOf(scratch.engine.jobRole);
    const readable = statementsAllowing(scratchJson, jobRole, 's3:GetObject').flatMap((statement) => [statement.Resource].flat());
    expect(readable.filter((resource) => typeof resource === 'string')).toEqual(['arn:aws:s3:::shared-datasets/questions/*']);
    expect(JSON.stringify(resources)).not.toContain('BAKEHOUSE_DATASET_URI_PREFIXES');
    expect(JSON.stringify(resources)).not.toContain('shared-datasets');
  });

  it("lets each lane's execution role read only that lane's secret, pull the image and write the engine's logs", () => {
    const pull = ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetAuthorizationToken', 'ecr:GetDownloadUrlForLayer'];
    const secretRead = ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'];
    for (const [role, secret] of [
      [ids.gpuExecutionRole, ids.hubToken],
      [ids.cpuExecutionRole, ids.llmKeys],
    ] as const) {
      expect(actionsOf(json, role)).toEqual([...pull, 'logs:CreateLogStream', 'logs:PutLogEvents', ...secretRead].sort());
      expect(statementsAllowing(json, role, 'secretsmanager:GetSecretValue').map((statement) => statement.Resource)).toEqual([{ Ref: secret }]);
      expect(statementsAllowing(json, role, 'logs:PutLogEvents').map((statement) => statement.Resource)).toEqual([arn(ids.engineLogs)]);
    }
  });

  it('reads the admin key from the buffered API only, not from chat', () => {
    const readers = Object.entries(resources)
      .filter(([, resource]) => resource.Type === 'AWS::IAM::Policy' && JSON.stringify(resource.Properties).includes(`"Ref":"${ids.adminKey}"`))
      .map(([, resource]) => resource.Properties.Roles);
    expect(readers).toEqual([[{ Ref: ids.apiRole }]]);
    expect(actionsOf(json, ids.chatRole).filter((action) => action.startsWith('secretsmanager:'))).toEqual([]);
    expect(resources[ids.chat]!.Properties.Environment.Variables).not.toHaveProperty('ADMIN_KEY_SECRET_ARN');
  });

  it('uses the wildcard resource only for actions that take no resource', () => {
    const allowed = new Set(['xray:PutTelemetryRecords', 'xray:PutTraceSegments', 'batch:DescribeJobs', 'ecr:GetAuthorizationToken']);
    const wildcardActions = Object.values(resources)
      .filter((resource) => resource.Type === 'AWS::IAM::Policy')
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
      .filter((statement) => [statement.Resource].flat().includes('*'))
      .flatMap((statement) => [statement.Action].flat());
    expect(wildcardActions.filter((action) => !allowed.has(action))).toEqual([]);
  });

  it('attaches a managed policy to the Batch instance role only (besides CDK\'s own custom-resource provider)', () => {
    const withManaged = Object.entries(resources)
      .filter(([, resource]) => resource.Type === 'AWS::IAM::Role' && resource.Properties.ManagedPolicyArns)
      .map(([id]) => id);
    expect(withManaged).toEqual([
      // The restrictDefaultSecurityGroup feature flag's provider, which strips the VPC's default group.
      expect.stringMatching(/^CustomVpcRestrictDefaultSGCustomResourceProviderRole/),
      idOf(acme.engine.gpu.computeEnvironment.node.findChild('InstanceProfileRole')),
    ]);
  });
});

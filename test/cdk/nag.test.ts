import { Aspects } from 'aws-cdk-lib';
import type { SynthesisMessage } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { cdkApp, tenantConfig } from './support.ts';

// Both tenant shapes, checked as bin/app.ts checks them on every synth. With cdk.json's
// annotationsInValidationReport, an error annotation makes synth throw; here it is off so that
// every finding reaches the assertions below as a readable list. One synth serves every test.
const app = cdkApp({ '@aws-cdk/core:annotationsInValidationReport': false });
const stacks = [
  new TenantStack(app, 'Bakehouse-acme', {
    tenant: tenantConfig({
      tenantId: 'acme',
      account: '123456789012',
      alarmEmail: 'ops@acme.example',
      domain: { name: 'bread.acme.example', certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d' },
      dataPlane: { enabled: true, domainName: 'loops.acme.example', certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/4e5f6a7b' },
    }),
  }),
  new TenantStack(app, 'Bakehouse-scratch', {
    tenant: tenantConfig({
      tenantId: 'scratch',
      deletionProtection: false,
      gpu: { instanceTypes: ['g5.xlarge'], maxVcpus: 8, spot: true },
      datasetUriPrefixes: ['s3://shared-datasets/questions/'],
      api: { reservedConcurrency: 5, logRetentionDays: 1 },
      dataPlane: { enabled: true, allowHttp: true },
    }),
  }),
];
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
const assembly = app.synth();
const NAG_RULE = /^(AwsSolutions|Serverless)-|^CdkNagValidationFailure/;

/** What every stack acknowledges: `<resource type> <rule> [<finding>]`, one per suppression. */
const COMMON = [
  // Lambda runtime pinned to the bundle's target, on each of the six functions.
  ...['api', 'chat', 'dispatch', 'job-events', 'reconcile', 'webhooks'].flatMap(() => [
    'AWS::Lambda::Function AwsSolutions-L1',
    'AWS::Lambda::Function Serverless-LambdaLatestVersion',
  ]),
  // X-Ray takes no resource, on each function's policy; DescribeJobs takes none either.
  ...['api', 'chat', 'dispatch', 'job-events', 'reconcile', 'webhooks'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*'),
  'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*',
  // Synchronous APIs (buffered and chat), SQS-fed dispatcher and webhook deliverer: no asynchronous events to dead-letter.
  ...['api', 'chat', 'dispatch', 'webhooks'].map(() => 'AWS::Lambda::Function Serverless-LambdaDLQ'),
  ...['dispatch', 'webhooks'].map(() => 'AWS::Lambda::EventSourceMapping Serverless-LambdaEventSourceMappingDestination'),
  // Job files by job id, under jobs/: API, chat, dispatcher, job-events, reconciler, engine.
  ...['api', 'chat', 'dispatch', 'job-events', 'reconcile', 'engine'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 Resource::<ArtifactsBucket>/jobs/*'),
  // Chat request bodies by request id, under tmp/chat/: both APIs.
  ...['api', 'chat'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 Resource::<ArtifactsBucket>/tmp/chat/*'),
  // Training files by run, under training/ (the APIs, the functions following trainer ends, the
  // engine) and training operations' bodies under tmp/training/ (all but the engine).
  ...['api', 'chat', 'job-events', 'reconcile', 'engine'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 Resource::<ArtifactsBucket>/training/*'),
  ...['api', 'chat', 'job-events', 'reconcile'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 Resource::<ArtifactsBucket>/tmp/training/*'),
  // Batch job ARNs: terminate (API, chat, dispatcher, reconciler) and tag-on-submit (dispatcher).
  ...['api', 'chat', 'dispatch', 'reconcile', 'dispatch-tag'].map(() => 'AWS::IAM::Policy AwsSolutions-IAM5 /^Resource::arn:[^:]+:batch:[^:]+:.+:job\\/\\*$/'),
  // ECR login on both execution roles; the ECS agent's managed policy on the instance role.
  'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*',
  'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*',
  'AWS::IAM::Role AwsSolutions-IAM4 Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role',
  // Secrets that cannot rotate themselves.
  'AWS::SecretsManager::Secret AwsSolutions-SMG4',
  'AWS::SecretsManager::Secret AwsSolutions-SMG4',
  'AWS::SecretsManager::Secret AwsSolutions-SMG4',
  // Dead-letter queues need no dead-letter queue; the access-log bucket does not log itself.
  ...['jobs', 'events', 'webhooks'].map(() => 'AWS::SQS::Queue Serverless-SQSRedrivePolicy'),
  'AWS::S3::Bucket AwsSolutions-S1',
  // The alarm topic, and the targetless rule that counts failed jobs.
  'AWS::SNS::Topic AwsSolutions-SNS2',
  'AWS::Events::Rule Serverless-EventBusDLQ',
];

/** The data plane (both stacks run one): a public listener, its configuration, and the API's grants. */
const DATA_PLANE = [
  'AWS::EC2::SecurityGroup AwsSolutions-EC23',
  'AWS::ECS::TaskDefinition AwsSolutions-ECS2',
  // ECR login on its execution role.
  'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*',
  ...['jobs', 'tmp/chat', 'training', 'tmp/training'].map((prefix) => `AWS::IAM::Policy AwsSolutions-IAM5 Resource::<ArtifactsBucket>/${prefix}/*`),
  'AWS::IAM::Policy AwsSolutions-IAM5 /^Resource::arn:[^:]+:batch:[^:]+:.+:job\\/\\*$/',
];

const ACKNOWLEDGED: Record<string, string[]> = {
  'Bakehouse-acme': [
    ...COMMON,
    ...DATA_PLANE,
    'AWS::SNS::Subscription Serverless-SNSRedrivePolicy',
    // The custom domain's routes: the app checks API keys itself.
    'AWS::ApiGatewayV2::Route AwsSolutions-APIG4',
  ],
  'Bakehouse-scratch': [
    ...COMMON,
    ...DATA_PLANE,
    // Reading the operator's dataset folder (tenant datasetUriPrefixes).
    'AWS::IAM::Policy AwsSolutions-IAM5 /^Resource::arn:[^:]+:s3:::shared-datasets\\/questions\\/\\*$/',
  ],
};

describe.each(stacks.map((stack) => [stack.stackName, stack] as const))('cdk-nag on %s', (name, stack) => {
  const artifact = assembly.getStackArtifact(stack.artifactId);
  const findings = (level: string) =>
    artifact.messages.filter((message) => message.level === level && NAG_RULE.test(String(message.entry.data))).map(describeFinding);

  it('leaves no unacknowledged error', () => {
    expect(findings('error')).toEqual([]);
  });

  it('leaves no unacknowledged warning', () => {
    expect(findings('warning')).toEqual([]);
  });

  it('acknowledges exactly the findings the constructs explain, each with its reason', () => {
    const resources = artifact.template.Resources as Record<string, Resource>;
    const acknowledged = Object.entries(resources).flatMap(([logicalId, resource]) =>
      (resource.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule) => {
        expect(rule.reason.length, `${logicalId} ${rule.id}`).toBeGreaterThan(40);
        const appliesTo = (rule.applies_to ?? []).map((finding) =>
          typeof finding === 'string' ? finding.replace(/<ArtifactsBucket[0-9A-F]{8}\.Arn>/, '<ArtifactsBucket>') : finding.regex,
        );
        return [`${resource.Type} ${rule.id}`, ...appliesTo].join(' ');
      }),
    );
    expect(acknowledged.sort()).toEqual([...ACKNOWLEDGED[name]!].sort());
  });
});

/** `path: rule message`, without the stack trace a finding carries. */
function describeFinding(message: SynthesisMessage): string {
  return `${message.id}: ${String(message.entry.data)}`;
}

interface Resource {
  Type: string;
  Metadata?: {
    cdk_nag?: { rules_to_suppress?: { id: string; reason: string; applies_to?: (string | { regex: string })[] }[] };
  };
}

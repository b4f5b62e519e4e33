import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { cdkApp, tenantConfig } from './support.ts';

// One app, two tenants: a protected production tenant with defaults, and a throwaway one.
const app = cdkApp();
const acme = new TenantStack(app, 'Bakehouse-acme', { tenant: tenantConfig({ tenantId: 'acme', account: '123456789012' }) });
const scratch = new TenantStack(app, 'Bakehouse-scratch', {
  tenant: tenantConfig({ tenantId: 'scratch', deletionProtection: false, api: { reservedConcurrency: 20, logRetentionDays: 7 } }),
});
const template = Template.fromStack(acme);
const scratchTemplate = Template.fromStack(scratch);

/** The logical id of the one resource of `type`. */
function onlyId(of: Template, type: string): string {
  const ids = Object.keys(of.findResources(type));
  expect(ids).toHaveLength(1);
  return ids[0]!;
}

const tableId = onlyId(template, 'AWS::DynamoDB::Table');
const secretId = onlyId(template, 'AWS::SecretsManager::Secret');
const functionId = onlyId(template, 'AWS::Lambda::Function');
const logGroupId = onlyId(template, 'AWS::Logs::LogGroup');
const roleId = onlyId(template, 'AWS::IAM::Role');

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

  it('holds the table, the secret and the API, nothing else yet', () => {
    expect(Object.values(template.toJSON().Resources).map((resource) => (resource as { Type: string }).Type).sort()).toEqual([
      'AWS::DynamoDB::Table',
      'AWS::IAM::Policy',
      'AWS::IAM::Role',
      'AWS::Lambda::Function',
      'AWS::Lambda::Permission',
      'AWS::Lambda::Permission',
      'AWS::Lambda::Url',
      'AWS::Logs::LogGroup',
      'AWS::SecretsManager::Secret',
    ]);
  });
});

describe('ItemTable', () => {
  it('is the Store single table: pk/sk, gsi1 projecting all, TTL on ttl', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayEquals([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gsi1pk', AttributeType: 'S' },
        { AttributeName: 'gsi1sk', AttributeType: 'S' },
      ]),
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
      SSESpecification: { SSEEnabled: true },
    });
    // AWS-managed (aws/dynamodb), not a customer key.
    expect(template.toJSON().Resources[tableId].Properties.SSESpecification).toEqual({ SSEEnabled: true });
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

describe('ApiSecrets', () => {
  it('has CloudFormation generate the admin key', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        Description: Match.stringLikeRegexp('admin API key'),
        GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true, IncludeSpace: false },
      },
      DeletionPolicy: 'Retain',
    });
    scratchTemplate.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Delete' });
  });
});

describe('Api', () => {
  it('runs the bundled handler on Node.js 22, ARM64, with the table and secret in its environment', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 1024,
      Timeout: 29,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: { Ref: logGroupId } },
      Role: { 'Fn::GetAtt': [roleId, 'Arn'] },
      Environment: {
        Variables: {
          TABLE_NAME: { Ref: tableId },
          ADMIN_KEY_SECRET_ARN: { Ref: secretId },
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
    });
  });

  it('reserves concurrency only when the tenant asks', () => {
    expect(template.toJSON().Resources[functionId].Properties.ReservedConcurrentExecutions).toBeUndefined();
    scratchTemplate.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 20 });
  });

  it('keeps its logs for the configured retention', () => {
    template.hasResource('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 30 }, DeletionPolicy: 'Retain' });
    scratchTemplate.hasResource('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 7 }, DeletionPolicy: 'Delete' });
  });

  it('is served by a Function URL without IAM auth (the app checks API keys itself)', () => {
    template.hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'NONE',
      TargetFunctionArn: { 'Fn::GetAtt': [functionId, 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunctionUrl',
      FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] },
      FunctionUrlAuthType: 'NONE',
      Principal: '*',
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] },
      InvokedViaFunctionUrl: true,
      Principal: '*',
    });
  });

  it('is bundled as ESM without the embedded runtime or its native module', () => {
    const key = template.toJSON().Resources[functionId].Properties.Code.S3Key as string;
    const bundle = readFileSync(join(app.outdir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs'), 'utf8');
    expect(bundle.startsWith("import { createRequire as __bakehouseRequire } from 'node:module';")).toBe(true);
    expect(bundle).toMatch(/export\s*\{[^}]*\bas handler\b[^}]*\}/);
    expect(bundle).toContain('GetSecretValue');
    expect(bundle).not.toContain('better-sqlite3');
    expect(bundle).not.toContain('SqliteStore');
  });
});

describe('least privilege', () => {
  it('gives the API role no managed policies', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }],
      },
      ManagedPolicyArns: Match.absent(),
    });
  });

  it('grants the API exactly its logs, traces, table items and the admin key', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    expect(Object.keys(policies)).toHaveLength(1);
    const policy = Object.values(policies)[0]!;
    expect(policy.Properties.Roles).toEqual([{ Ref: roleId }]);
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] },
      },
      {
        Effect: 'Allow',
        Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
        // The one wildcard: these X-Ray actions support no resource-level permissions.
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: [
          'dynamodb:BatchGetItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:DeleteItem',
          'dynamodb:DescribeTable',
          'dynamodb:GetItem',
          'dynamodb:GetRecords',
          'dynamodb:GetShardIterator',
          'dynamodb:PutItem',
          'dynamodb:Query',
          'dynamodb:Scan',
          'dynamodb:UpdateItem',
        ],
        Resource: [
          { 'Fn::GetAtt': [tableId, 'Arn'] },
          // This table's indexes only (gsi1).
          { 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId, 'Arn'] }, '/index/*']] },
        ],
      },
      {
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: { Ref: secretId },
      },
    ]);
  });
});

describe('outputs', () => {
  it('publishes the API URL and where the admin key lives', () => {
    template.hasOutput('ApiUrl', { Value: { 'Fn::GetAtt': [onlyId(template, 'AWS::Lambda::Url'), 'FunctionUrl'] } });
    template.hasOutput('AdminKeySecretArn', { Value: { Ref: secretId } });
  });
});

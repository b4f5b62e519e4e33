import { Aspects } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { SynthesisMessage } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { cdkApp, tenantConfig } from './support.ts';

// Both tenant shapes, checked as bin/app.ts checks them on every synth. With cdk.json's
// annotationsInValidationReport, an error annotation makes synth throw; here it is off so that
// every finding reaches the assertions below as a readable list.
const app = cdkApp({ '@aws-cdk/core:annotationsInValidationReport': false });
const stacks = [
  new TenantStack(app, 'Bakehouse-acme', { tenant: tenantConfig({ tenantId: 'acme' }) }),
  new TenantStack(app, 'Bakehouse-scratch', {
    tenant: tenantConfig({ tenantId: 'scratch', deletionProtection: false, api: { reservedConcurrency: 5, logRetentionDays: 1 } }),
  }),
];
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
const NAG_RULE = Match.stringLikeRegexp('AwsSolutions-.*|Serverless-.*');

describe.each(stacks.map((stack) => [stack.stackName, stack] as const))('cdk-nag on %s', (_name, stack) => {
  // Annotations.fromStack synthesizes the app again each time: once per stack is enough.
  const annotations = Annotations.fromStack(stack);

  it('leaves no unacknowledged error', () => {
    expect(annotations.findError('*', NAG_RULE).map(describeFinding)).toEqual([]);
  });

  it('leaves no unacknowledged warning', () => {
    expect(annotations.findWarning('*', NAG_RULE).map(describeFinding)).toEqual([]);
  });

  it('acknowledges exactly the findings the constructs explain, each with its reason', () => {
    const template = Template.fromStack(stack);
    const resources = template.toJSON().Resources as Record<string, Resource>;
    const acknowledged = Object.entries(resources).flatMap(([logicalId, resource]) =>
      (resource.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule) => {
        expect(rule.reason.length, `${logicalId} ${rule.id}`).toBeGreaterThan(40);
        return [`${resource.Type} ${rule.id}`, ...(rule.applies_to ?? [])].join(' ');
      }),
    );
    const [tableId] = Object.keys(template.findResources('AWS::DynamoDB::Table'));
    expect(acknowledged.sort()).toEqual(
      [
        'AWS::SecretsManager::Secret AwsSolutions-SMG4',
        'AWS::Lambda::Function AwsSolutions-L1',
        'AWS::Lambda::Function Serverless-LambdaLatestVersion',
        'AWS::Lambda::Function Serverless-LambdaDLQ',
        'AWS::IAM::Policy AwsSolutions-IAM5 Resource::*',
        `AWS::IAM::Policy AwsSolutions-IAM5 Resource::<${tableId}.Arn>/index/*`,
      ].sort(),
    );
  });
});

/** `path: rule message`, without the stack trace a finding carries. */
function describeFinding(message: SynthesisMessage): string {
  return `${message.id}: ${String(message.entry.data)}`;
}

interface Resource {
  Type: string;
  Metadata?: {
    cdk_nag?: { rules_to_suppress?: { id: string; reason: string; applies_to?: string[] }[] };
  };
}

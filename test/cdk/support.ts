/** Shared set-up for the CDK tests: apps built as `cdk synth` builds them. */
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { loadTenants, type TenantConfig } from '../../lib/config.ts';

const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

/** An App with cdk.json's feature flags, so that tests see the template `cdk synth` produces. */
export function cdkApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...cdkJson.context, ...context } });
}

/** A valid tenant, validated like the real config, with `overrides` on top. */
export function tenantConfig(overrides: Record<string, unknown> = {}): TenantConfig {
  const [tenant] = loadTenants({
    tenants: [{ tenantId: 'acme', region: 'eu-west-1', gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 8 }, ...overrides }],
  });
  return tenant!;
}

export interface PolicyStatement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
}

interface TemplateJson {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
}

/** Every statement of every AWS::IAM::Policy attached to the role `roleId` (inline policies too). */
export function statementsOf(template: TemplateJson, roleId: string): PolicyStatement[] {
  const attached = Object.values(template.Resources).filter(
    (resource) =>
      resource.Type === 'AWS::IAM::Policy' &&
      (resource.Properties?.Roles as unknown[] | undefined)?.some((role) => JSON.stringify(role) === JSON.stringify({ Ref: roleId })),
  );
  const inline = (template.Resources[roleId]?.Properties?.Policies as { PolicyDocument: { Statement: PolicyStatement[] } }[] | undefined) ?? [];
  return [
    ...attached.flatMap((policy) => (policy.Properties!.PolicyDocument as { Statement: PolicyStatement[] }).Statement),
    ...inline.flatMap((policy) => policy.PolicyDocument.Statement),
  ];
}

/** The sorted, distinct actions a role is allowed. */
export function actionsOf(template: TemplateJson, roleId: string): string[] {
  return [...new Set(statementsOf(template, roleId).flatMap((statement) => [statement.Action].flat()))].sort();
}

/** The statements of a role that allow `action`. */
export function statementsAllowing(template: TemplateJson, roleId: string, action: string): PolicyStatement[] {
  return statementsOf(template, roleId).filter((statement) => [statement.Action].flat().includes(action));
}

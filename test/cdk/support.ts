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

/**
 * The CDK app: one TenantStack per tenant in `bakehouse.tenants.json` (or the file named by
 * BAKEHOUSE_TENANTS_FILE). cdk-nag runs on every synth, so an unacknowledged finding fails it.
 */
import { resolve } from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { readTenantsFile, TenantConfigError, type TenantConfig } from '../lib/config.ts';
import { TenantStack, tenantStackName } from '../lib/tenant-stack.ts';

let tenants: TenantConfig[];
try {
  tenants = readTenantsFile(resolve(process.env.BAKEHOUSE_TENANTS_FILE ?? 'bakehouse.tenants.json'));
} catch (error) {
  if (!(error instanceof TenantConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}

const app = new App();
for (const tenant of tenants) {
  new TenantStack(app, tenantStackName(tenant.tenantId), { tenant });
}
Aspects.of(app).add(new AwsSolutionsChecks());
Aspects.of(app).add(new ServerlessChecks());
app.synth();

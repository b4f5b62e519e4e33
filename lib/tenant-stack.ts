import { CfnOutput, RemovalPolicy, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import type { CfnTable } from 'aws-cdk-lib/aws-dynamodb';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import type { TenantConfig } from './config.ts';
import { Api } from './constructs/api.ts';
import { ApiSecrets } from './constructs/api-secrets.ts';
import { ItemTable } from './constructs/item-table.ts';

export interface TenantStackProps extends StackProps {
  readonly tenant: TenantConfig;
}

/** The stack name for a tenant: `Bakehouse-<tenantId>`. */
export function tenantStackName(tenantId: string): string {
  return `Bakehouse-${tenantId}`;
}

/** One tenant's deployment (DESIGN.md §7). */
export class TenantStack extends Stack {
  readonly table: ItemTable;
  readonly secrets: ApiSecrets;
  readonly api: Api;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    const { tenant, ...stackProps } = props;
    super(scope, id, {
      stackName: tenantStackName(tenant.tenantId),
      description: `Bakehouse tenant ${tenant.tenantId}`,
      env: { account: tenant.account, region: tenant.region },
      terminationProtection: tenant.deletionProtection,
      ...stackProps,
    });
    Tags.of(this).add('bakehouse:tenant', tenant.tenantId);
    const removalPolicy = tenant.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.table = new ItemTable(this, 'Items', { deletionProtection: tenant.deletionProtection, removalPolicy });
    this.secrets = new ApiSecrets(this, 'Secrets', { removalPolicy });
    this.api = new Api(this, 'Api', {
      tableName: this.table.tableName,
      adminKeySecretArn: this.secrets.adminKey.secretArn,
      reservedConcurrency: tenant.api.reservedConcurrency,
      logRetention: tenant.api.logRetentionDays as RetentionDays,
      removalPolicy,
    });

    // Least privilege: only the API function touches the table and reads the admin key.
    this.table.grantReadWriteData(this.api.function);
    this.secrets.grantReadAdminKey(this.api.function);

    new CfnOutput(this, 'ApiUrl', { value: this.api.url.url, description: 'Base URL of the Bread and Loops APIs' });
    new CfnOutput(this, 'AdminKeySecretArn', {
      value: this.secrets.adminKey.secretArn,
      description: 'Secret holding the admin API key: aws secretsmanager get-secret-value --secret-id <arn>',
    });

    const tableLogicalId = this.getLogicalId(this.table.table.node.defaultChild as CfnTable);
    NagSuppressions.addResourceSuppressions(this.api.role.node.findChild('DefaultPolicy'), [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "grantReadWriteData covers the table's indexes as <table>/index/*; the wildcard stays inside this one " +
          'table, whose only index is gsi1, which the Store queries.',
        appliesTo: [`Resource::<${tableLogicalId}.Arn>/index/*`],
      },
    ]);
  }
}

import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface ItemTableProps {
  /** Blocks DeleteTable (and is kept by CloudFormation) when true. Default: true. */
  readonly deletionProtection?: boolean;
  /** What happens to the table when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The Store's single DynamoDB table (functions/adapters/aws/dynamodb-store.ts): `pk`/`sk`, one
 * GSI `gsi1` on `gsi1pk`/`gsi1sk` projecting everything, and TTL on `ttl`. On-demand billing,
 * point-in-time recovery and encryption under the AWS-managed key.
 */
export class ItemTable extends Construct {
  static readonly GSI1 = 'gsi1';
  static readonly TTL_ATTRIBUTE = 'ttl';
  static readonly STORE_ACTIONS = [
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    'dynamodb:DeleteItem',
    'dynamodb:Query',
    'dynamodb:ConditionCheckItem',
  ];

  readonly table: Table;

  constructor(scope: Construct, id: string, props: ItemTableProps = {}) {
    super(scope, id);
    this.table = new Table(this, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: ItemTable.TTL_ATTRIBUTE,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: ItemTable.GSI1,
      partitionKey: { name: 'gsi1pk', type: AttributeType.STRING },
      sortKey: { name: 'gsi1sk', type: AttributeType.STRING },
      projectionType: ProjectionType.ALL,
    });
  }

  get tableName(): string {
    return this.table.tableName;
  }

  /**
   * The item calls the Store makes (functions/adapters/aws/dynamodb-store.ts), on the table and
   * its one index: get, put, update, delete, query, and the condition checks inside its
   * transactions (TransactWriteItems is authorised per item action). No scans, batch calls,
   * stream reads or table administration.
   */
  grantStoreAccess(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ItemTable.STORE_ACTIONS,
      resourceArns: [this.table.tableArn, `${this.table.tableArn}/index/${ItemTable.GSI1}`],
    });
  }
}

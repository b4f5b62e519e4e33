import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, FunctionUrlAuthType, Runtime, Tracing, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Bundles run as ESM (top-level await in the handler); CommonJS dependencies inside the bundle
 * still call `require` for Node built-ins, which ESM does not define.
 */
const ESM_REQUIRE_BANNER = "import { createRequire as __bakehouseRequire } from 'node:module'; const require = __bakehouseRequire(import.meta.url);";

export interface ApiProps {
  /** The Store's table (`TABLE_NAME`). */
  readonly tableName: string;
  /** The secret holding the admin API key (`ADMIN_KEY_SECRET_ARN`). */
  readonly adminKeySecretArn: string;
  /** Reserves, and so caps, concurrent executions. Default: none reserved. */
  readonly reservedConcurrency?: number;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The Hono API (functions/handlers/api.ts) on Lambda behind a Function URL.
 *
 * The URL's AuthType is NONE on purpose: the clients (Bread and Loops SDKs, curl) send their own
 * `Authorization: Bearer` / `Api-Key` header, which the app checks against hashed keys on every
 * route, and they cannot sign requests with SigV4, which AWS_IAM would require.
 *
 * Grants are the caller's: the function starts with permission only to write its own logs and
 * traces.
 */
export class Api extends Construct {
  readonly function: NodejsFunction;
  /** The function's role; grants to `function` land in its default policy. */
  readonly role: Role;
  readonly url: FunctionUrl;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    // Our own role rather than the default one, which carries the AWSLambdaBasicExecutionRole
    // managed policy (logs on every log group in the account).
    const role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    this.role = role;
    this.logGroup.grantWrite(role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: `${REPO_ROOT}functions/handlers/api.ts`,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}package-lock.json`,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: 1024,
      timeout: Duration.seconds(29),
      role,
      logGroup: this.logGroup,
      tracing: Tracing.ACTIVE,
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: {
        TABLE_NAME: props.tableName,
        ADMIN_KEY_SECRET_ARN: props.adminKeySecretArn,
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        // esbuild from node_modules; synth needs neither Docker nor AWS credentials.
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        // Bundle the AWS SDK too, at the versions the tests ran, rather than the runtime's copy.
        externalModules: [],
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
      },
    });

    this.url = this.function.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });

    NagSuppressions.addResourceSuppressions(this.function, [
      {
        id: 'AwsSolutions-L1',
        reason:
          'Node.js 22 is chosen, not defaulted: the bundle is built for node22 (esbuild target), and moving to a ' +
          'newer major changes runtime and target together, deliberately, once the app is tested on it.',
      },
      {
        id: 'Serverless-LambdaLatestVersion',
        reason: 'Same as AwsSolutions-L1: the runtime is pinned to the Node.js major the bundle targets.',
      },
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked only synchronously, through its Function URL: the caller receives every failure as an HTTP ' +
          'response, and there are no asynchronous events that a dead-letter queue could keep.',
      },
    ]);
    NagSuppressions.addResourceSuppressions(role.node.findChild('DefaultPolicy'), [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support resource-level permissions.',
        appliesTo: ['Resource::*'],
      },
    ]);
  }
}

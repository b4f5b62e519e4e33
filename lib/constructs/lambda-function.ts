import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Bundles run as ESM (top-level await in the handler); CommonJS dependencies inside the bundle
 * still call `require` for Node built-ins, which ESM does not define.
 */
const ESM_REQUIRE_BANNER = "import { createRequire as __bakehouseRequire } from 'node:module'; const require = __bakehouseRequire(import.meta.url);";

export interface HandlerFunctionProps {
  /** The file under functions/handlers/ without `.ts`: `api`, `dispatch`, `job-events`, `reconcile`. */
  readonly handler: string;
  readonly description: string;
  readonly timeout: Duration;
  /** Default: 512 MiB. */
  readonly memorySize?: number;
  /** The runtime configuration every handler reads (functions/composition.ts `awsConfigFromEnv`). */
  readonly environment: Record<string, string>;
  /** Reserves, and so caps, concurrent executions. Default: none reserved. */
  readonly reservedConcurrency?: number;
  /** Where asynchronous invocations that failed every retry go. Default: none. */
  readonly deadLetterQueue?: IQueue;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Built folders shipped beside the bundle: the repo-relative folder `from` lands as `to` next
   * to the handler's index.mjs. Synth fails, naming `missingHint`, when `from` is not built.
   */
  readonly bundleFolders?: readonly { from: string; to: string; missingHint: string }[];
}

export interface HandlerFunction {
  readonly function: NodejsFunction;
  /** The function's own role; grants to `function` land in its default policy. */
  readonly role: Role;
  readonly logGroup: LogGroup;
}

/**
 * One of the Lambda entries in functions/handlers, bundled here with esbuild (no Docker), with
 * its own role and log group. Every Bakehouse function is built this way, so that they share
 * runtime, bundling, tracing and the findings those choices answer.
 *
 * The children are created in `scope` itself (`Logs`, `Role`, `Function`), so that a construct
 * holding one function keeps short, stable logical ids.
 */
export function handlerFunction(scope: Construct, props: HandlerFunctionProps): HandlerFunction {
  const logGroup = new LogGroup(scope, 'Logs', {
    retention: props.logRetention ?? RetentionDays.ONE_MONTH,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
  });
  // Our own role rather than the default one, which carries the AWSLambdaBasicExecutionRole
  // managed policy (logs on every log group in the account).
  const role = new Role(scope, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
  logGroup.grantWrite(role);

  const fn = new NodejsFunction(scope, 'Function', {
    entry: `${REPO_ROOT}functions/handlers/${props.handler}.ts`,
    handler: 'handler',
    description: props.description,
    projectRoot: REPO_ROOT,
    depsLockFilePath: `${REPO_ROOT}package-lock.json`,
    runtime: Runtime.NODEJS_22_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize ?? 512,
    timeout: props.timeout,
    role,
    logGroup,
    tracing: Tracing.ACTIVE,
    reservedConcurrentExecutions: props.reservedConcurrency,
    deadLetterQueue: props.deadLetterQueue,
    environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
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
      commandHooks: {
        beforeBundling: () => [],
        beforeInstall: () => [],
        afterBundling: (inputDir, outputDir) =>
          (props.bundleFolders ?? []).map(
            ({ from, to, missingHint }) =>
              `test -d "${inputDir}/${from}" || { echo "${from} is missing: ${missingHint}" >&2; exit 1; }; cp -R "${inputDir}/${from}" "${outputDir}/${to}"`,
          ),
      },
    },
  });

  NagSuppressions.addResourceSuppressions(fn, [
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
  ]);
  NagSuppressions.addResourceSuppressions(role.node.findChild('DefaultPolicy'), [
    {
      id: 'AwsSolutions-IAM5',
      reason: 'X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support resource-level permissions.',
      appliesTo: ['Resource::*'],
    },
  ]);
  return { function: fn, role, logGroup };
}

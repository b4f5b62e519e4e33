import { Duration, Fn, type RemovalPolicy } from 'aws-cdk-lib';
import type { Role } from 'aws-cdk-lib/aws-iam';
import { FunctionUrlAuthType, InvokeMode, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { handlerFunction } from './lambda-function.ts';

export interface ApiProps {
  /** The runtime configuration every handler reads (table, bucket, queue, Batch names). */
  readonly environment: Record<string, string>;
  /** The secret holding the admin API key (`ADMIN_KEY_SECRET_ARN`); the buffered API ensures it. */
  readonly adminKeySecretArn?: string;
  /**
   * Stream responses (functions/handlers/chat.ts): chat replies arrive as they are generated and
   * may take up to 15 minutes. Default false: the buffered API, which API Gateway can front.
   */
  readonly streaming?: boolean;
  /** Reserves, and so caps, concurrent executions. Default: none reserved. */
  readonly reservedConcurrency?: number;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The Hono API (functions/handlers/api.ts) on Lambda behind a Function URL; or, with `streaming`,
 * the same app with streamed responses (functions/handlers/chat.ts) for chat clients.
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
    const streaming = props.streaming ?? false;
    const { function: fn, role, logGroup } = handlerFunction(this, {
      handler: streaming ? 'chat' : 'api',
      description: streaming ? 'Bakehouse APIs with streamed responses, for chat (Hono)' : 'Bakehouse Bread and Loops APIs (Hono)',
      memorySize: 1024,
      // API Gateway, in front of the buffered API when the tenant has a custom domain, waits at
      // most 30 s; a streamed chat reply may first wait minutes for a sampler to start.
      timeout: streaming ? Duration.minutes(15) : Duration.seconds(29),
      environment: { ...props.environment, ...(props.adminKeySecretArn ? { ADMIN_KEY_SECRET_ARN: props.adminKeySecretArn } : {}) },
      reservedConcurrency: props.reservedConcurrency,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      // The web console (functions/http/routes/console.ts) is served from the bundle's folder.
      bundleFolders: [{ from: 'functions/console/dist', to: 'console', missingHint: 'build the web console with `npm run build:console`' }],
    });
    this.function = fn;
    this.role = role;
    this.logGroup = logGroup;
    this.url = fn.addFunctionUrl({ authType: FunctionUrlAuthType.NONE, invokeMode: streaming ? InvokeMode.RESPONSE_STREAM : InvokeMode.BUFFERED });

    NagSuppressions.addResourceSuppressions(fn, [
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked only synchronously, through its Function URL or API Gateway: the caller receives every failure as ' +
          'an HTTP response, and there are no asynchronous events that a dead-letter queue could keep.',
      },
    ]);
  }

  /**
   * `https://<id>.lambda-url.<region>.on.aws`: the Function URL without its trailing slash, so
   * that `$BREAD_BASE_URL/v1/...` is not a `//v1/...` path.
   */
  get baseUrl(): string {
    return `https://${Fn.select(2, Fn.split('/', this.url.url))}`;
  }
}

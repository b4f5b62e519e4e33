import { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { CfnRoute, DomainName, HttpApi, HttpStage, LogGroupLogDestination } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface ApiDomainProps {
  /** The API function (functions/handlers/api.ts). */
  readonly handler: IFunction;
  /** The DNS name the API answers on, e.g. `bread.example.com`. */
  readonly domainName: string;
  /** An ACM certificate for `domainName` in the stack's region. */
  readonly certificateArn: string;
  /** Steady-state requests per second across all clients. Default: 100. */
  readonly rateLimit?: number;
  /** Default: 200. */
  readonly burstLimit?: number;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the access log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The API on the tenant's own domain: an API Gateway HTTP API that passes every request to the
 * API function (the same payload a Function URL sends, so the app cannot tell them apart).
 * Function URLs take no custom domain; an HTTP API does, with a regional certificate, and
 * forwards the Authorization header untouched, which the SDKs' API keys travel in.
 *
 * Its execute-api endpoint is switched off so that the domain is the one way in through it.
 * DNS stays with the operator: a CNAME from the domain to `regionalDomainName`.
 */
export class ApiDomain extends Construct {
  readonly httpApi: HttpApi;
  readonly domain: DomainName;
  readonly accessLogs: LogGroup;
  /** The DNS name, as configured (a plain string, unlike `domain.name`). */
  readonly domainName: string;

  constructor(scope: Construct, id: string, props: ApiDomainProps) {
    super(scope, id);
    this.domainName = props.domainName;
    this.domain = new DomainName(this, 'Domain', {
      domainName: props.domainName,
      certificate: Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn),
    });
    this.httpApi = new HttpApi(this, 'HttpApi', {
      description: 'Bakehouse Bread and Loops APIs on a custom domain',
      defaultIntegration: new HttpLambdaIntegration('Api', props.handler),
      createDefaultStage: false,
      disableExecuteApiEndpoint: true,
    });
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    new HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      domainMapping: { domainName: this.domain },
      throttle: { rateLimit: props.rateLimit ?? 100, burstLimit: props.burstLimit ?? 200 },
      accessLogSettings: {
        destination: new LogGroupLogDestination(this.accessLogs),
        format: AccessLogFormat.jsonWithStandardFields(),
      },
    });
    NagSuppressions.addResourceSuppressions(
      // The one route, $default, which sends everything to the function.
      this.httpApi.node.findAll().filter((child) => child instanceof CfnRoute),
      [
        {
          id: 'AwsSolutions-APIG4',
          reason:
            'Authorisation is the app\'s: every route checks the caller\'s API key (Authorization: Bearer, Api-Key or ' +
            'X-API-Key) against hashed keys in the Store, as the official Bread and Loops clients expect; an API ' +
            'Gateway authoriser would check the same key twice.',
        },
      ],
    );
  }

  /** The target of the operator's CNAME record. */
  get regionalDomainName(): string {
    return this.domain.regionalDomainName;
  }

  /** Without a trailing slash, as clients join it with `/v1/...`. */
  get url(): string {
    return `https://${this.domainName}`;
  }

  /** 5xx answers on the custom domain (Lambda errors, timeouts and the app's own 500s). */
  metricServerErrors(): Metric {
    return this.httpApi.metricServerError({ statistic: 'Sum' });
  }
}

import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { EventSourceMapping } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { acknowledgeDeadLetterQueue } from './job-queue.ts';
import { handlerFunction, type HandlerFunction } from './lambda-function.ts';

export interface WebhookDeliveryProps {
  /** The runtime configuration every handler reads; the delivery queue's URL is added here. */
  readonly environment: Record<string, string>;
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Outbound webhooks (functions/core/webhooks): a standard SQS queue of delivery ids and the
 * function that makes each attempt (functions/handlers/webhooks.ts). The function is not in a
 * VPC, like the API, so it reaches users' endpoints on the internet directly; the SSRF guard in
 * the code keeps it off internal addresses.
 *
 * Endpoint failures are retried on the delivery's own schedule (a new message with a delay), so
 * a record fails only when the Store does; after five such receives it is dead-lettered, the
 * alarm fires, and the reconcile sweep sends the delivery again from the Store.
 */
export class WebhookDelivery extends Construct {
  /** Ten attempts in parallel, each given 15 s by the code, with room for the Store writes. */
  static readonly TIMEOUT = Duration.seconds(60);
  static readonly BATCH_SIZE = 10;
  /** Caps the event source: a burst of events is sent a few batches at a time. */
  static readonly MAX_CONCURRENCY = 5;
  static readonly MAX_RECEIVE_COUNT = 5;

  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly deliverer: HandlerFunction;

  constructor(scope: Construct, id: string, props: WebhookDeliveryProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeDeadLetterQueue(this.deadLetterQueue);
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Six times the consumer's timeout, as AWS recommends for Lambda event sources.
      visibilityTimeout: Duration.seconds(WebhookDelivery.TIMEOUT.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: WebhookDelivery.MAX_RECEIVE_COUNT },
    });

    this.deliverer = handlerFunction(new Construct(this, 'Deliverer'), {
      environment: { ...props.environment, WEBHOOK_DELIVERY_QUEUE_URL: this.queue.queueUrl },
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      handler: 'webhooks',
      description: "Bakehouse: delivers events to users' webhooks",
      timeout: WebhookDelivery.TIMEOUT,
    });
    this.deliverer.function.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: WebhookDelivery.BATCH_SIZE,
        maxConcurrency: WebhookDelivery.MAX_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );
    // A retry is a new message with a delay, sent by the function itself.
    this.grantSendDeliveryMessages(this.deliverer.function);
    NagSuppressions.addResourceSuppressions(this.deliverer.function, [
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked by an SQS event source, never asynchronously: a record that keeps failing is moved to the delivery ' +
          "queue's own dead-letter queue by its redrive policy.",
      },
    ]);
    NagSuppressions.addResourceSuppressions(
      this.deliverer.function.node.children.filter((child) => child instanceof EventSourceMapping),
      [
        {
          id: 'Serverless-LambdaEventSourceMappingDestination',
          reason:
            'SQS event source mappings take no on-failure destination (Lambda supports one only for stream and ' +
            "Kafka sources); the queue's redrive policy dead-letters a record after five failed receives.",
        },
      ],
    );
  }

  get queueUrl(): string {
    return this.queue.queueUrl;
  }

  /** sqs:SendMessage only: publishing an event queues its deliveries (functions/adapters/aws/sqs-delivery-queue.ts). */
  grantSendDeliveryMessages(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({ grantee, actions: ['sqs:SendMessage'], resourceArns: [this.queue.queueArn] });
  }
}

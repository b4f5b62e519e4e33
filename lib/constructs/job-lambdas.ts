import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { EventSourceMapping } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { handlerFunction, type HandlerFunction } from './lambda-function.ts';
import { acknowledgeDeadLetterQueue, type JobQueue } from './job-queue.ts';

export interface JobLambdasProps {
  /** The runtime configuration every handler reads (table, bucket, queue, Batch names). */
  readonly environment: Record<string, string>;
  /** Feeds the dispatcher. Its visibility timeout must allow for `JobLambdas.DISPATCHER_TIMEOUT`. */
  readonly jobQueue: JobQueue;
  /** The Batch job queues whose state changes the job-events function applies. */
  readonly batchJobQueueArns: string[];
  /** Default: one month. */
  readonly logRetention?: RetentionDays;
  /** What happens to the log groups when they leave the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The job flow's three background functions (DESIGN.md §1, steps 2, 4 and 6):
 *
 * - dispatcher (functions/handlers/dispatch.ts): SQS → `Compute.submit`, reporting failed
 *   records one by one (reportBatchItemFailures) so that a batch is never retried whole;
 * - job-events (functions/handlers/job-events.ts): EventBridge "Batch Job State Change" for this
 *   tenant's job queues only → the job state machine;
 * - reconciler (functions/handlers/reconcile.ts): every five minutes, jobs stuck on the way.
 *
 * Events that cannot be delivered to the EventBridge targets, and asynchronous invocations that
 * failed every retry, land in one dead-letter queue, which the alarms watch.
 */
export class JobLambdas extends Construct {
  /** Submitting a batch of ten jobs to Batch takes seconds; the queue's visibility is six times this. */
  static readonly DISPATCHER_TIMEOUT = Duration.seconds(60);
  /** Records per dispatcher invocation. */
  static readonly DISPATCH_BATCH_SIZE = 10;
  /**
   * Concurrent dispatcher invocations the queue may drive. A burst of jobs is submitted a few
   * batches at a time instead of as fast as Lambda scales, which would run into Batch's SubmitJob
   * rate limit; this caps the event source without reserving account concurrency.
   */
  static readonly DISPATCH_CONCURRENCY = 5;
  /** Matches the reconciler's grace periods (functions/handlers/reconcile.ts: 5 and 15 minutes). */
  static readonly RECONCILE_EVERY = Duration.minutes(5);

  readonly dispatcher: HandlerFunction;
  readonly jobEvents: HandlerFunction;
  readonly reconciler: HandlerFunction;
  readonly eventDeadLetters: Queue;
  readonly batchStateChanges: Rule;
  readonly reconcileSchedule: Rule;

  constructor(scope: Construct, id: string, props: JobLambdasProps) {
    super(scope, id);
    const common = { environment: props.environment, logRetention: props.logRetention, removalPolicy: props.removalPolicy };

    this.eventDeadLetters = new Queue(this, 'EventDeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeDeadLetterQueue(this.eventDeadLetters);

    this.dispatcher = handlerFunction(new Construct(this, 'Dispatcher'), {
      ...common,
      handler: 'dispatch',
      description: 'Bakehouse: submits queued jobs to AWS Batch',
      timeout: JobLambdas.DISPATCHER_TIMEOUT,
    });
    this.dispatcher.function.addEventSource(
      new SqsEventSource(props.jobQueue.queue, {
        batchSize: JobLambdas.DISPATCH_BATCH_SIZE,
        maxConcurrency: JobLambdas.DISPATCH_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );
    NagSuppressions.addResourceSuppressions(this.dispatcher.function, [
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked by an SQS event source, never asynchronously: a record that keeps failing is moved to the job ' +
          "queue's own dead-letter queue by its redrive policy.",
      },
    ]);
    NagSuppressions.addResourceSuppressions(
      this.dispatcher.function.node.children.filter((child) => child instanceof EventSourceMapping),
      [
        {
          id: 'Serverless-LambdaEventSourceMappingDestination',
          reason:
            'SQS event source mappings take no on-failure destination (Lambda supports one only for stream and ' +
            "Kafka sources); the queue's redrive policy dead-letters a record after five failed receives.",
        },
      ],
    );

    this.jobEvents = handlerFunction(new Construct(this, 'JobEvents'), {
      ...common,
      handler: 'job-events',
      description: 'Bakehouse: applies AWS Batch job state changes to jobs',
      timeout: Duration.seconds(30),
      deadLetterQueue: this.eventDeadLetters,
    });
    this.batchStateChanges = new Rule(this, 'BatchStateChanges', {
      description: "Bakehouse: this tenant's AWS Batch job state changes, to the job-events function",
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job State Change'],
        detail: { jobQueue: props.batchJobQueueArns },
      },
      targets: [new LambdaFunction(this.jobEvents.function, { deadLetterQueue: this.eventDeadLetters })],
    });

    this.reconciler = handlerFunction(new Construct(this, 'Reconciler'), {
      ...common,
      handler: 'reconcile',
      description: 'Bakehouse: re-sends, re-queues or fails jobs stuck on the way',
      // One DescribeJobs per active job; a sweep of a few hundred jobs fits with room to spare.
      timeout: Duration.minutes(5),
      deadLetterQueue: this.eventDeadLetters,
    });
    this.reconcileSchedule = new Rule(this, 'ReconcileSchedule', {
      description: 'Bakehouse: runs the job reconciler',
      schedule: Schedule.rate(JobLambdas.RECONCILE_EVERY),
      targets: [new LambdaFunction(this.reconciler.function, { deadLetterQueue: this.eventDeadLetters })],
    });
  }

  /** All three functions, for grants and alarms that apply to each. */
  get all(): HandlerFunction[] {
    return [this.dispatcher, this.jobEvents, this.reconciler];
  }
}

import { Duration } from 'aws-cdk-lib';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface JobQueueProps {
  /**
   * The timeout of the function that consumes the queue. The visibility timeout is six times
   * that, as AWS recommends for Lambda event sources: a batch the poller holds while the
   * function is throttled or retried must not reappear to a second consumer meanwhile.
   */
  readonly consumerTimeout: Duration;
  /** Deliveries before a message is dead-lettered. Default: 5. */
  readonly maxReceiveCount?: number;
}

/**
 * The JobQueue port's SQS queue (functions/adapters/aws/sqs-job-queue.ts): one message per job
 * to dispatch, holding only the job id. A standard queue: dispatch is idempotent (a conditional
 * `queued → submitted` claim), so at-least-once delivery in any order is enough.
 *
 * A message that keeps failing goes to the dead-letter queue rather than cycling forever; the
 * job it names stays `queued`, where the reconciler finds it again.
 */
export class JobQueue extends Construct {
  /** Messages are kept after a failed delivery for inspection and redrive. */
  static readonly DEAD_LETTER_RETENTION = Duration.days(14);

  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: JobQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: JobQueue.DEAD_LETTER_RETENTION,
    });
    acknowledgeDeadLetterQueue(this.deadLetterQueue);
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
  }

  get queueUrl(): string {
    return this.queue.queueUrl;
  }

  /** sqs:SendMessage only (the adapter neither reads attributes nor looks the URL up). */
  grantSendJobMessages(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({ grantee, actions: ['sqs:SendMessage'], resourceArns: [this.queue.queueArn] });
  }
}

/** A dead-letter queue is where redrive ends; giving it one of its own would only move the question. */
export function acknowledgeDeadLetterQueue(queue: Queue): void {
  NagSuppressions.addResourceSuppressions(queue, [
    {
      id: 'Serverless-SQSRedrivePolicy',
      reason:
        'This is a dead-letter queue: its messages are kept for inspection and redriven by an operator, and the ' +
        'DLQ-depth alarm reports the first one.',
    },
  ]);
}

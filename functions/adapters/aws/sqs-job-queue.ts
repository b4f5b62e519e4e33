/**
 * SqsJobQueue: the JobQueue port on one SQS queue. The body is `{"jobId":n}`; the dispatcher
 * Lambda reads it back with `parseJobMessageBody`.
 *
 * FIFO queues (URL ending in `.fifo`) get MessageGroupId = the job id, so messages for one job
 * stay in order, and a fresh MessageDeduplicationId per `send` call: the SDK's own retries of that
 * call reuse it (so a retried request is not delivered twice), while a deliberate second send
 * (a re-queue) is never silently dropped. FIFO queues have no per-message delay.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { randomUUID } from 'node:crypto';
import type { JobMessage, JobQueue } from '#ports/job-queue.ts';
import { checkedDelaySeconds, jobMessageBody } from '../job-message.ts';

export { parseJobMessageBody } from '../job-message.ts';

export interface SqsJobQueueOptions {
  /** Belongs to the caller, who destroys it. */
  client: SQSClient;
  queueUrl: string;
}

export class SqsJobQueue implements JobQueue {
  readonly queueUrl: string;
  readonly fifo: boolean;
  private readonly client: SQSClient;

  constructor({ client, queueUrl }: SqsJobQueueOptions) {
    if (!queueUrl) throw new Error('SqsJobQueue needs a queue URL');
    this.client = client;
    this.queueUrl = queueUrl;
    this.fifo = queueUrl.endsWith('.fifo');
  }

  async send(message: JobMessage, options: { delaySeconds?: number } = {}): Promise<void> {
    const body = jobMessageBody(message);
    const delaySeconds = checkedDelaySeconds(options.delaySeconds);
    if (this.fifo && delaySeconds > 0) {
      throw new RangeError('FIFO queues have no per-message delay; send without delaySeconds or use a standard queue');
    }
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: body,
        ...(this.fifo
          ? { MessageGroupId: String(message.jobId), MessageDeduplicationId: randomUUID() }
          : delaySeconds > 0
            ? { DelaySeconds: delaySeconds }
            : {}),
      }),
    );
  }
}

/**
 * SqsDeliveryQueue: the webhook delivery queue on a standard SQS queue, body
 * `{"deliveryId":"…","attempt":n}` (functions/schemas/webhooks.ts). The webhooks Lambda reads it
 * back with `parseDeliveryMessageBody`. Waits longer than SQS's 15 minutes are capped by the
 * caller, which sends the message on again when it arrives early.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DeliveryMessage, DeliveryQueue } from '#core/webhooks/ports.ts';
import { DeliveryMessageBody } from '#schemas/webhooks.ts';
import { checkedDelaySeconds } from '../job-message.ts';

export interface SqsDeliveryQueueOptions {
  /** Belongs to the caller, who destroys it. */
  client: SQSClient;
  queueUrl: string;
}

export class SqsDeliveryQueue implements DeliveryQueue {
  private readonly client: SQSClient;
  private readonly queueUrl: string;

  constructor({ client, queueUrl }: SqsDeliveryQueueOptions) {
    if (!queueUrl) throw new Error('SqsDeliveryQueue needs a queue URL');
    this.client = client;
    this.queueUrl = queueUrl;
  }

  async send(message: DeliveryMessage, options: { delaySeconds?: number } = {}): Promise<void> {
    const delaySeconds = checkedDelaySeconds(options.delaySeconds);
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(DeliveryMessageBody.parse(message)),
        ...(delaySeconds > 0 ? { DelaySeconds: delaySeconds } : {}),
      }),
    );
  }
}

/** Reads a queue body back; throws on anything but a delivery message. */
export function parseDeliveryMessageBody(body: string): DeliveryMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new TypeError(`A webhook delivery message body must be JSON (got ${JSON.stringify(body.slice(0, 100))})`);
  }
  return DeliveryMessageBody.parse(parsed);
}

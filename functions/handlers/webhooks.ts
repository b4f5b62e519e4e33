import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSHandler, SQSRecord } from 'aws-lambda';
import { parseDeliveryMessageBody } from '#adapters/aws/sqs-delivery-queue.ts';
import { runtime } from './runtime.ts';

/**
 * SQS → one webhook delivery attempt per record, in parallel. An endpoint's failure is recorded
 * and retried on the delivery's own schedule, so a record fails here only when the Store does:
 * that record alone is retried (partial batch failure), then dead-lettered, and the reconcile
 * sweep queues its delivery again.
 */
const processor = new BatchProcessor(EventType.SQS);

const deliverRecord = async (record: SQSRecord) => {
  await runtime.services.webhooks.handleDelivery(parseDeliveryMessageBody(record.body));
};

export const handler: SQSHandler = async (event, context) => processPartialResponse(event, deliverRecord, processor, { context });

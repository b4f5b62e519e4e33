import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSHandler, SQSRecord } from 'aws-lambda';
import { parseJobMessageBody } from '#adapters/job-message.ts';
import { runtime } from './runtime.ts';

/** SQS → dispatch: a failed record alone is retried (partial batch failure), then dead-lettered. */
const processor = new BatchProcessor(EventType.SQS);

const dispatchRecord = async (record: SQSRecord) => {
  const { jobId } = parseJobMessageBody(record.body);
  await runtime.services.pipeline.dispatch(jobId);
};

export const handler: SQSHandler = async (event, context) => processPartialResponse(event, dispatchRecord, processor, { context });

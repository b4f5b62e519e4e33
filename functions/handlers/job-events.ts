import type { EventBridgeEvent } from 'aws-lambda';
import { computeEventFromBatch } from '#adapters/aws/batch-compute.ts';
import { runtime } from './runtime.ts';

/**
 * EventBridge "Batch Job State Change" → the job state machine (applied monotonically), which
 * publishes the job's event and advances its pipelines; what fails to publish stays in the outbox
 * for the reconciler.
 */
export const handler = async (event: EventBridgeEvent<string, unknown>): Promise<void> => {
  const change = computeEventFromBatch(event);
  if (change) await runtime.services.pipeline.applyEvent(change);
};

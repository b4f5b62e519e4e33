import { runtime } from './runtime.ts';

/**
 * Scheduled: jobs stuck in queued, submitted or running are re-sent, re-queued or failed, job
 * and pipeline events a crash left in the outbox are published (and advance their pipelines),
 * webhook deliveries that are due but whose queue message was lost are queued again, training
 * runs catch up with trainer ends they missed, and expired or stale ephemeral checkpoints go.
 */
export const handler = async (): Promise<void> => {
  await runtime.services.pipeline.reconcile({ queuedGraceMs: 5 * 60_000, submitGraceMs: 15 * 60_000 });
  await runtime.services.webhooks.sweepDeliveries();
  await runtime.services.training.sweep();
};

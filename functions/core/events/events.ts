/**
 * What happens in a user's space that their own systems may hear about (DESIGN.md §7a): job,
 * pipeline and training-run lifecycle events. Producers (the job flow, pipelines, training runs)
 * publish them; subscribers (webhooks) deliver them. The payload shapes are the zod schemas in
 * functions/schemas/events.ts, which also document them in OpenAPI.
 */

export type EventType =
  | 'stim.started' | 'stim.completed' | 'stim.failed'
  | 'rollout.started' | 'rollout.completed' | 'rollout.failed'
  | 'bake.started' | 'bake.completed' | 'bake.failed'
  | 'pipeline.completed' | 'pipeline.failed'
  | 'run.created' | 'run.ready' | 'run.stopped' | 'run.failed'
  | 'checkpoint.saved'
  | 'webhook.test';

export interface DomainEvent {
  /**
   * Stable for one occurrence (e.g. derived from the job id and the state it reached), so a
   * producer that publishes again after a crash publishes the same event, and subscribers can
   * deliver it under the same `webhook-id`.
   */
  id: string;
  /** The user whose resources the event is about; only that user's subscriptions receive it. */
  userId: string;
  type: EventType;
  /** ISO 8601, when it happened. */
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * Takes events for delivery. `publish` must be idempotent by `event.id` and durable once it
 * returns: a producer calls it again after a crash until it has returned once.
 */
export interface EventPublisher {
  publish(event: DomainEvent): Promise<void>;
}

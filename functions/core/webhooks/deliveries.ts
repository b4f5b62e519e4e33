/**
 * Deliveries: one per (webhook, event), kept in the Store from the moment an event is published
 * until the endpoint has taken it or every retry has failed, so a crash or restart loses none.
 * The queue only says "try this one now"; a message that arrives twice, early or late is harmless:
 * each attempt is claimed with a conditional write, and a message names the attempt it is for.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Webhook } from 'standardwebhooks';
import type { Clock } from '../../ports/clock.ts';
import { ConditionFailedError, TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { DomainEvent } from '../events/events.ts';
import { eventPayload } from '../../schemas/events.ts';
import type { DeliveryMessage, WebhookDeliveryPorts } from './ports.ts';
import { MAX_ATTEMPTS, retryDelayMs } from './retry-schedule.ts';
import { checkDestination } from './ssrf.ts';
import { keys } from '../keys.ts';
import type { WebhookItem } from './webhook-service.ts';

/** How long an endpoint has to answer. */
export const DELIVERY_TIMEOUT_MS = 15_000;
/** How long a claimed attempt is left alone before the sweep treats its worker as gone. */
const CLAIM_MS = DELIVERY_TIMEOUT_MS + 45_000;
/** SQS's per-message delay limit; a longer wait is covered by sending the message on again. */
const MAX_QUEUE_DELAY_S = 900;
/** Finished deliveries stay listed this long. */
const FINISHED_RETENTION_S = 30 * 24 * 3600;

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryItem extends Item {
  id: string;
  webhookId: string;
  userId: string;
  eventId: string;
  eventType: string;
  /** The exact body sent: the event's versioned payload (functions/schemas/events.ts). */
  payload: string;
  createdAt: string;
  state: DeliveryState;
  /** Attempts made so far. */
  attempts: number;
  /** Bumped by every change, so concurrent workers' writes are conditional on what they read. */
  version: number;
  nextAttemptAt?: string;
  claimedUntil?: string;
  lastAttemptAt?: string;
  statusCode?: number;
  latencyMs?: number;
  error?: string;
}

export interface DeliveryView {
  id: string;
  event_id: string;
  event_type: string;
  state: DeliveryState;
  attempt: number;
  status_code: number | null;
  latency_ms: number | null;
  error: string | null;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  created_at: string;
}

export interface DeliveryPage {
  data: DeliveryView[];
  next_cursor: string | null;
}

interface AttemptResult {
  ok: boolean;
  statusCode?: number;
  latencyMs: number;
  error?: string;
}

export class WebhookDeliveries {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly ports: WebhookDeliveryPorts,
  ) {}

  /** Stores the delivery of `event` to `webhook` (once, whatever the number of calls) and queues its first attempt. */
  async create(webhook: WebhookItem, event: DomainEvent): Promise<DeliveryItem> {
    const id = deliveryId(webhook.id, event.id);
    const createdAt = this.now();
    const delivery: DeliveryItem = {
      ...keys.webhookDelivery(id),
      ...keys.webhookDeliveryIndex(webhook.id),
      gsi1sk: `${createdAt}#${id}`,
      id,
      webhookId: webhook.id,
      userId: webhook.userId,
      eventId: event.id,
      eventType: event.type,
      payload: JSON.stringify(eventPayload(event)),
      createdAt,
      state: 'pending',
      attempts: 0,
      version: 0,
      nextAttemptAt: createdAt,
    };
    try {
      await this.store.transact([
        { kind: 'put', item: delivery, condition: { exists: false } },
        { kind: 'put', item: { ...keys.pendingWebhookDelivery(id) } },
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      // Published before: the stored delivery stands; queue it again in case the first call
      // stopped before queueing (a message for an attempt already made is dropped).
      const stored = (await this.store.get(keys.webhookDelivery(id))) as DeliveryItem | undefined;
      if (stored?.state === 'pending') await this.enqueue(stored, 0);
      return stored ?? delivery;
    }
    await this.enqueue(delivery, 0);
    return delivery;
  }

  /** Handles one queue message: makes the attempt it names if that attempt is still due. */
  async handle({ deliveryId, attempt }: DeliveryMessage): Promise<void> {
    const delivery = (await this.store.get(keys.webhookDelivery(deliveryId))) as DeliveryItem | undefined;
    if (!delivery || delivery.state !== 'pending' || attempt !== delivery.attempts + 1) return;
    const now = this.clock.now().getTime();
    const dueIn = Date.parse(delivery.nextAttemptAt ?? delivery.createdAt) - now;
    if (dueIn > 0) return this.enqueue(delivery, dueIn);
    if (delivery.claimedUntil && Date.parse(delivery.claimedUntil) > now) return;
    const claimed = await this.claim(delivery, now);
    if (!claimed) return;
    const webhook = (await this.store.get(keys.webhook(claimed.userId, claimed.webhookId))) as WebhookItem | undefined;
    if (!webhook) return this.giveUp(claimed, 'The webhook was deleted before this delivery was sent.');
    if (webhook.disabled) return this.giveUp(claimed, 'The webhook is disabled; re-enable it and redeliver to send this event.');
    const result = await this.attempt(webhook, claimed);
    await this.record(webhook, claimed, result);
  }

  /**
   * Queues every pending delivery whose attempt is due and that no worker holds: run by the
   * reconcile schedule, it brings back deliveries whose queue message was lost (a restart of the
   * embedded server, a crash between storing and queueing). Returns how many it queued.
   */
  async sweep(): Promise<number> {
    const now = this.clock.now().getTime();
    const { items: markers } = await this.store.query(keys.pendingWebhookDeliveries);
    let queued = 0;
    for (const marker of markers) {
      const delivery = (await this.store.get(keys.webhookDelivery(marker.sk))) as DeliveryItem | undefined;
      // A delivery leaves the pending state and its marker in one transaction (`finish`).
      if (delivery?.state !== 'pending') continue;
      const due = Date.parse(delivery.nextAttemptAt ?? delivery.createdAt) <= now;
      const held = delivery.claimedUntil !== undefined && Date.parse(delivery.claimedUntil) > now;
      if (!due || held) continue;
      await this.ports.queue.send({ deliveryId: delivery.id, attempt: delivery.attempts + 1 });
      queued++;
    }
    return queued;
  }

  /** Sends a delivery again from its first attempt, whatever became of it. */
  async redeliver(webhook: WebhookItem, id: string): Promise<DeliveryItem> {
    const delivery = await this.get(webhook.id, id);
    if (delivery.claimedUntil && Date.parse(delivery.claimedUntil) > this.clock.now().getTime()) {
      throw new ConflictError(`Delivery '${id}' is being attempted right now; wait for the attempt to finish, then redeliver.`);
    }
    const now = this.now();
    const key = keys.webhookDelivery(id);
    try {
      await this.store.transact([
        {
          kind: 'update',
          key,
          update: {
            set: { state: 'pending', attempts: 0, nextAttemptAt: now },
            remove: ['ttl', 'claimedUntil'],
            add: { version: 1 },
            condition: { equals: { version: delivery.version } },
          },
        },
        { kind: 'put', item: { ...keys.pendingWebhookDelivery(id) } },
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError) throw new ConflictError(`Delivery '${id}' changed while it was being redelivered; try again.`);
      throw error;
    }
    const pending = { ...delivery, state: 'pending', attempts: 0, nextAttemptAt: now } as DeliveryItem;
    await this.enqueue(pending, 0);
    return pending;
  }

  async get(webhookId: string, id: string): Promise<DeliveryItem> {
    const delivery = (await this.store.get(keys.webhookDelivery(id))) as DeliveryItem | undefined;
    if (!delivery || delivery.webhookId !== webhookId) throw new NotFoundError(`Delivery '${id}' not found for webhook '${webhookId}'.`);
    return delivery;
  }

  /** A page of the webhook's deliveries, newest first. */
  async list(webhookId: string, limit: number, cursor?: string): Promise<DeliveryPage> {
    const page = await this.store.query({ pk: keys.webhookDeliveryIndex(webhookId).gsi1pk, index: 'gsi1', limit, cursor, descending: true }).catch((error: unknown) => {
      // Both Store adapters refuse a cursor they did not write; DynamoDB also one from another list.
      const refused = error instanceof Error && (error.message === 'Invalid query cursor' || error.name === 'ValidationException');
      if (cursor !== undefined && refused) {
        throw new ValidationError(`The cursor '${cursor.slice(0, 40)}' is not one this delivery list gave; list again from the first page, without a cursor.`);
      }
      throw error;
    });
    return { data: page.items.map((item) => deliveryView(item as DeliveryItem)), next_cursor: page.cursor ?? null };
  }

  private async claim(delivery: DeliveryItem, now: number): Promise<DeliveryItem | undefined> {
    try {
      return (await this.store.update(keys.webhookDelivery(delivery.id), {
        set: { claimedUntil: new Date(now + CLAIM_MS).toISOString() },
        add: { version: 1 },
        condition: { equals: { version: delivery.version, state: 'pending' } },
        upsert: false,
      })) as DeliveryItem;
    } catch (error) {
      if (error instanceof ConditionFailedError) return undefined;
      throw error;
    }
  }

  /** One POST, signed per Standard Webhooks; any failure is a result, never a throw. */
  private async attempt(webhook: WebhookItem, delivery: DeliveryItem): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      // Checked on every attempt: what the name resolves to may have changed since registration.
      const { url, address } = await checkDestination(webhook.url, this.ports.policy, this.ports.resolve);
      const timestamp = this.clock.now();
      const signature = new Webhook(webhook.secret).sign(delivery.eventId, timestamp, delivery.payload);
      const { status } = await this.ports.send({
        url,
        address,
        body: delivery.payload,
        timeoutMs: DELIVERY_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Bakehouse-Webhooks/1',
          'webhook-id': delivery.eventId,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
        },
      });
      if (status >= 200 && status < 300) return { ok: true, statusCode: status, latencyMs: elapsed() };
      const error =
        status >= 300 && status < 400
          ? `The endpoint answered HTTP ${status}; redirects are not followed, so give the webhook its final URL.`
          : `The endpoint answered HTTP ${status}; only a 2xx answer counts as delivered.`;
      return { ok: false, statusCode: status, latencyMs: elapsed(), error };
    } catch (error) {
      return { ok: false, latencyMs: elapsed(), error: error instanceof Error ? error.message : String(error) };
    }
  }

  private async record(webhook: WebhookItem, delivery: DeliveryItem, result: AttemptResult): Promise<void> {
    const attempts = delivery.attempts + 1;
    const now = this.now();
    const outcome = { attempts, lastAttemptAt: now, latencyMs: result.latencyMs, ...(result.statusCode !== undefined ? { statusCode: result.statusCode } : {}) };
    const clearStatus = result.statusCode === undefined ? ['statusCode'] : [];
    if (result.ok) {
      await this.finish(delivery, 'delivered', outcome, [...clearStatus, 'error']);
      await this.noteSuccess(webhook, now);
      return;
    }
    const delayMs = retryDelayMs(attempts);
    if (delayMs === undefined) {
      await this.finish(delivery, 'failed', { ...outcome, error: result.error }, clearStatus);
      await this.disableIfFailingThroughout(webhook, delivery, result.error);
      return;
    }
    const nextAttemptAt = new Date(Date.parse(now) + delayMs).toISOString();
    const updated = (await this.store.update(keys.webhookDelivery(delivery.id), {
      set: { ...outcome, error: result.error, nextAttemptAt },
      remove: ['claimedUntil', ...clearStatus],
      add: { version: 1 },
      condition: { equals: { version: delivery.version } },
      upsert: false,
    })) as DeliveryItem;
    await this.enqueue(updated, delayMs);
  }

  private async giveUp(delivery: DeliveryItem, error: string): Promise<void> {
    await this.finish(delivery, 'failed', { error }, []);
  }

  /** Ends a delivery (delivered or given up) and takes it off the sweep's list in one write. */
  private async finish(delivery: DeliveryItem, state: DeliveryState, set: Record<string, unknown>, remove: string[]): Promise<void> {
    await this.store.transact([
      {
        kind: 'update',
        key: keys.webhookDelivery(delivery.id),
        update: {
          set: { ...set, state, ttl: Math.floor(this.clock.now().getTime() / 1000) + FINISHED_RETENTION_S },
          remove: ['claimedUntil', 'nextAttemptAt', ...remove],
          add: { version: 1 },
          condition: { equals: { version: delivery.version } },
          upsert: false,
        },
      },
      { kind: 'delete', key: keys.pendingWebhookDelivery(delivery.id) },
    ]);
  }

  private async noteSuccess(webhook: WebhookItem, at: string): Promise<void> {
    try {
      await this.store.update(keys.webhook(webhook.userId, webhook.id), { set: { lastSuccessAt: at }, condition: { exists: true }, upsert: false });
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error; // deleted meanwhile
    }
  }

  /**
   * An endpoint is disabled when a delivery has used every attempt (about 27 hours of failures)
   * and nothing was delivered to it since that delivery was created: it has been failing
   * throughout, not just for one event.
   */
  private async disableIfFailingThroughout(webhook: WebhookItem, delivery: DeliveryItem, lastError: string | undefined): Promise<void> {
    const current = (await this.store.get(keys.webhook(webhook.userId, webhook.id))) as WebhookItem | undefined;
    if (!current || current.disabled) return;
    if (current.lastSuccessAt && current.lastSuccessAt >= delivery.createdAt) return;
    const reason =
      `Disabled automatically on ${this.now()}: every delivery attempt since ${delivery.createdAt} failed ` +
      `(${MAX_ATTEMPTS} attempts of event ${delivery.eventId}; last: ${lastError ?? 'unknown error'}). ` +
      'Fix the endpoint, re-enable the webhook with PATCH {"disabled": false}, then redeliver what it missed.';
    try {
      await this.store.update(keys.webhook(webhook.userId, webhook.id), {
        set: { disabled: true, disabledReason: reason },
        condition: current.lastSuccessAt ? { equals: { lastSuccessAt: current.lastSuccessAt } } : { absent: ['lastSuccessAt'] },
        upsert: false,
      });
    } catch (error) {
      // A delivery succeeded meanwhile, or the webhook was deleted: it is not failing throughout.
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }

  private async enqueue(delivery: DeliveryItem, delayMs: number): Promise<void> {
    const delaySeconds = Math.min(Math.ceil(Math.max(delayMs, 0) / 1000), MAX_QUEUE_DELAY_S);
    await this.ports.queue.send({ deliveryId: delivery.id, attempt: delivery.attempts + 1 }, delaySeconds > 0 ? { delaySeconds } : {});
  }

  private now(): string {
    return this.clock.now().toISOString();
  }
}

/** The same webhook and event always give the same delivery id: the conditional create is keyed by it. */
export function deliveryId(webhookId: string, eventId: string): string {
  return `dlv_${createHash('sha256').update(`${webhookId}\n${eventId}`).digest('base64url').slice(0, 32)}`;
}

export function deliveryView(item: DeliveryItem): DeliveryView {
  return {
    id: item.id,
    event_id: item.eventId,
    event_type: item.eventType,
    state: item.state,
    attempt: item.attempts,
    status_code: item.statusCode ?? null,
    latency_ms: item.latencyMs ?? null,
    error: item.error ?? null,
    next_attempt_at: item.state === 'pending' ? (item.nextAttemptAt ?? null) : null,
    last_attempt_at: item.lastAttemptAt ?? null,
    created_at: item.createdAt,
  };
}

/**
 * Webhooks out (DESIGN.md §7a): a user's subscriptions to their events, and the EventPublisher
 * the job flow, pipelines and training runs publish to. Publishing only stores one delivery per
 * matching subscription and queues it (deliveries.ts), so it never waits on a user's endpoint.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../ports/clock.ts';
import { ConditionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { Actor } from '../actor.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import type { DomainEvent, EventPublisher, EventType } from '../events/events.ts';
import { deliveryView, WebhookDeliveries, type DeliveryPage, type DeliveryView } from './deliveries.ts';
import type { DeliveryMessage, WebhookDeliveryPorts } from './ports.ts';
import { checkDestination } from './ssrf.ts';
import { keys } from '../keys.ts';

/** Subscribes to every event type. */
export const ALL_EVENTS = '*';

export interface WebhookItem extends Item {
  id: string;
  userId: string;
  url: string;
  events: string[];
  description: string | null;
  /** `whsec_` + base64 of 32 random bytes (Standard Webhooks); shown once, on creation. */
  secret: string;
  createdAt: string;
  disabled: boolean;
  disabledReason?: string;
  /** When an attempt last succeeded: a webhook that succeeds now and then is never disabled. */
  lastSuccessAt?: string;
}

export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  created_at: string;
  disabled: boolean;
  disabled_reason: string | null;
}

export interface WebhookCreate {
  url: string;
  events: string[];
  description?: string | null;
}

export interface WebhookPatch {
  url?: string;
  events?: string[];
  description?: string | null;
  disabled?: boolean;
}

export class WebhookService implements EventPublisher {
  private readonly deliveries: WebhookDeliveries;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly ports: WebhookDeliveryPorts,
  ) {
    this.deliveries = new WebhookDeliveries(store, clock, ports);
  }

  async create(actor: Actor, input: WebhookCreate): Promise<WebhookView & { secret: string }> {
    await checkDestination(input.url, this.ports.policy, this.ports.resolve);
    const id = `wh_${randomBytes(12).toString('hex')}`;
    const item: WebhookItem = {
      ...keys.webhook(actor.userId, id),
      id,
      userId: actor.userId,
      url: input.url,
      events: [...new Set(input.events)],
      description: input.description ?? null,
      secret: `whsec_${randomBytes(32).toString('base64')}`,
      createdAt: this.clock.now().toISOString(),
      disabled: false,
    };
    await this.store.put(item, { exists: false });
    return { ...webhookView(item), secret: item.secret };
  }

  async list(actor: Actor): Promise<WebhookView[]> {
    const { items } = await this.store.query(keys.webhookPartition(actor.userId));
    return (items as WebhookItem[]).map(webhookView);
  }

  async get(actor: Actor, id: string): Promise<WebhookView> {
    return webhookView(await this.find(actor, id));
  }

  async update(actor: Actor, id: string, patch: WebhookPatch): Promise<WebhookView> {
    const current = await this.find(actor, id);
    if (Object.values(patch).every((value) => value === undefined)) return webhookView(current);
    if (patch.url !== undefined) await checkDestination(patch.url, this.ports.policy, this.ports.resolve);
    const set: Record<string, unknown> = {};
    if (patch.url !== undefined) set.url = patch.url;
    if (patch.events !== undefined) set.events = [...new Set(patch.events)];
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.disabled !== undefined) set.disabled = patch.disabled;
    // Whether re-enabled or disabled by its owner, an automatic reason no longer applies.
    const remove = patch.disabled !== undefined ? ['disabledReason'] : [];
    try {
      const updated = await this.store.update(keys.webhook(actor.userId, id), { set, remove, condition: { exists: true }, upsert: false });
      return webhookView(updated as WebhookItem);
    } catch (error) {
      if (error instanceof ConditionFailedError) throw notFound(id);
      throw error;
    }
  }

  async delete(actor: Actor, id: string): Promise<void> {
    const deleted = await this.store.delete(keys.webhook(actor.userId, id));
    if (!deleted) throw notFound(id);
  }

  /** Sends a `webhook.test` event to this webhook alone, whatever events it subscribes to. */
  async test(actor: Actor, id: string): Promise<DeliveryView> {
    const webhook = await this.find(actor, id);
    if (webhook.disabled) throw new ConflictError(`Webhook '${id}' is disabled; re-enable it with PATCH {"disabled": false} before sending a test.`);
    const event: DomainEvent = {
      id: `evt_test_${randomBytes(12).toString('hex')}`,
      userId: actor.userId,
      type: 'webhook.test',
      timestamp: this.clock.now().toISOString(),
      data: { webhook_id: id, message: 'This is a test event from Bakehouse: your endpoint received and can verify it.' },
    };
    return deliveryView(await this.deliveries.create(webhook, event));
  }

  async listDeliveries(actor: Actor, id: string, limit: number, cursor?: string): Promise<DeliveryPage> {
    await this.find(actor, id);
    return this.deliveries.list(id, limit, cursor);
  }

  async redeliver(actor: Actor, id: string, deliveryId: string): Promise<DeliveryView> {
    const webhook = await this.find(actor, id);
    if (webhook.disabled) throw new ConflictError(`Webhook '${id}' is disabled; re-enable it with PATCH {"disabled": false} before redelivering.`);
    return deliveryView(await this.deliveries.redeliver(webhook, deliveryId));
  }

  /** Stores and queues one delivery per enabled subscription of the event's user to its type. */
  async publish(event: DomainEvent): Promise<void> {
    const { items } = await this.store.query(keys.webhookPartition(event.userId));
    for (const webhook of items as WebhookItem[]) {
      if (!webhook.disabled && subscribes(webhook, event.type)) await this.deliveries.create(webhook, event);
    }
  }

  /** The delivery queue's consumer (the webhooks Lambda on AWS, the in-process queue locally). */
  handleDelivery(message: DeliveryMessage): Promise<void> {
    return this.deliveries.handle(message);
  }

  /** Re-queues due deliveries whose message was lost; run by the reconcile schedule. */
  sweepDeliveries(): Promise<number> {
    return this.deliveries.sweep();
  }

  private async find(actor: Actor, id: string): Promise<WebhookItem> {
    const item = (await this.store.get(keys.webhook(actor.userId, id))) as WebhookItem | undefined;
    if (!item) throw notFound(id);
    return item;
  }
}

function subscribes(webhook: WebhookItem, type: EventType): boolean {
  return webhook.events.includes(ALL_EVENTS) || webhook.events.includes(type);
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`Webhook '${id}' not found.`);
}

function webhookView(item: WebhookItem): WebhookView {
  return {
    id: item.id,
    url: item.url,
    events: item.events,
    description: item.description,
    created_at: item.createdAt,
    disabled: item.disabled,
    disabled_reason: item.disabledReason ?? null,
  };
}

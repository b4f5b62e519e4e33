/**
 * Outbound webhooks (functions/core/webhooks): the bodies and answers of `/v1/webhooks`. What a
 * subscriber receives is documented by the event payload schemas (functions/schemas/events.ts).
 */
import { z } from 'zod';
import { EVENT_TYPES } from './events.ts';

const EventName = z.enum(['*', ...EVENT_TYPES] as [string, ...string[]]).meta({
  description: 'An event type, or `*` for every event type',
});

const Url = z.string().max(2048).meta({
  description:
    'Where events are POSTed. https on AWS; must resolve to a public address unless the operator allows internal ones. Redirects are not followed.',
  example: 'https://example.com/bakehouse-events',
});

const Description = z.string().max(500).nullable();

export const WebhookPath = z.object({ webhook_id: z.string().min(1).max(64) });
export const DeliveryPath = WebhookPath.extend({ delivery_id: z.string().min(1).max(64) });

export const WebhookCreate = z
  .object({
    url: Url,
    events: z.array(EventName).min(1).max(EVENT_TYPES.length + 1),
    description: Description.optional(),
  })
  .strict()
  .meta({ id: 'WebhookCreate' });

export const WebhookPatch = z
  .object({
    url: Url.optional(),
    events: z.array(EventName).min(1).max(EVENT_TYPES.length + 1).optional(),
    description: Description.optional(),
    disabled: z.boolean().optional().meta({ description: 'false re-enables a webhook and clears the reason it was disabled' }),
  })
  .strict()
  .meta({ id: 'WebhookPatch' });

export const WebhookResponse = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    created_at: z.string(),
    disabled: z.boolean(),
    disabled_reason: z.string().nullable().meta({ description: 'Why deliveries stopped, when they were stopped automatically' }),
  })
  .meta({ id: 'WebhookResponse' });

export const WebhookCreated = WebhookResponse.extend({
  secret: z.string().meta({
    description: 'The signing secret (`whsec_…`, Standard Webhooks): shown only in this answer. Verify each delivery’s `webhook-signature` with it.',
  }),
}).meta({ id: 'WebhookCreated' });

export const WebhookList = z.object({ webhooks: z.array(WebhookResponse) }).meta({ id: 'WebhookList' });

export const DeliveryResponse = z
  .object({
    id: z.string(),
    event_id: z.string().meta({ description: 'Sent as the `webhook-id` header: the same for every attempt of this event' }),
    event_type: z.string(),
    state: z.enum(['pending', 'delivered', 'failed']),
    attempt: z.number().int().meta({ description: 'Attempts made so far' }),
    status_code: z.number().int().nullable().meta({ description: 'The HTTP status of the last attempt; null when no answer came' }),
    latency_ms: z.number().int().nullable(),
    error: z.string().nullable().meta({ description: 'Why the last attempt failed' }),
    next_attempt_at: z.string().nullable().meta({ description: 'When a pending delivery is tried next' }),
    last_attempt_at: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'WebhookDelivery' });

export const DeliveryListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).optional().meta({ description: 'From the previous page’s `next_cursor`' }),
});

export const DeliveryList = z
  .object({ data: z.array(DeliveryResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'WebhookDeliveryList' });

/** The delivery queue's message body (functions/core/webhooks/ports.ts `DeliveryMessage`). */
export const DeliveryMessageBody = z.strictObject({ deliveryId: z.string().min(1).max(64), attempt: z.int().min(1) });

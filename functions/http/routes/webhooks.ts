import { createRoute } from '@hono/zod-openapi';
import type { Services } from '#core/services.ts';
import {
  DeliveryList,
  DeliveryListQuery,
  DeliveryPath,
  DeliveryResponse,
  WebhookCreate,
  WebhookCreated,
  WebhookList,
  WebhookPatch,
  WebhookPath,
  WebhookResponse,
} from '#schemas/webhooks.ts';
import { bearer, body, errors, json, type App } from '../openapi.ts';

const tags = ['Webhooks'];

/** A user's outbound webhooks and their delivery log; another user's webhook answers 404. */
export function webhookRoutes(app: App, { webhooks }: Services): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhooks',
      tags,
      security: bearer,
      summary: 'Subscribe a URL to events',
      description: 'Deliveries are signed per Standard Webhooks with the `secret` of this answer, which is not shown again.',
      request: { body: body(WebhookCreate) },
      responses: { 201: json(WebhookCreated, 'Created, with its signing secret'), ...errors(422) },
    }),
    async (c) => c.json(await webhooks.create(c.get('actor'), c.req.valid('json')), 201),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhooks',
      tags,
      security: bearer,
      summary: 'List webhooks',
      responses: { 200: json(WebhookList, 'The webhooks, without their secrets') },
    }),
    async (c) => c.json({ webhooks: await webhooks.list(c.get('actor')) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhooks/{webhook_id}',
      tags,
      security: bearer,
      summary: 'Get a webhook',
      request: { params: WebhookPath },
      responses: { 200: json(WebhookResponse, 'The webhook'), ...errors(404, 422) },
    }),
    async (c) => c.json(await webhooks.get(c.get('actor'), c.req.valid('param').webhook_id), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/v1/webhooks/{webhook_id}',
      tags,
      security: bearer,
      summary: 'Change or re-enable a webhook',
      request: { params: WebhookPath, body: body(WebhookPatch) },
      responses: { 200: json(WebhookResponse, 'The webhook as changed'), ...errors(404, 422) },
    }),
    async (c) => c.json(await webhooks.update(c.get('actor'), c.req.valid('param').webhook_id, c.req.valid('json')), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/webhooks/{webhook_id}',
      tags,
      security: bearer,
      summary: 'Delete a webhook',
      description: 'Deliveries still pending are given up.',
      request: { params: WebhookPath },
      responses: { 204: { description: 'Deleted' }, ...errors(404, 422) },
    }),
    async (c) => {
      await webhooks.delete(c.get('actor'), c.req.valid('param').webhook_id);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhooks/{webhook_id}/test',
      tags,
      security: bearer,
      summary: 'Send a webhook.test event',
      request: { params: WebhookPath },
      responses: { 202: json(DeliveryResponse, 'Queued; follow it in the delivery log'), ...errors(404, 409, 422) },
    }),
    async (c) => c.json(await webhooks.test(c.get('actor'), c.req.valid('param').webhook_id), 202),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhooks/{webhook_id}/deliveries',
      tags,
      security: bearer,
      summary: 'The delivery log, newest first',
      request: { params: WebhookPath, query: DeliveryListQuery },
      responses: { 200: json(DeliveryList, 'A page of deliveries'), ...errors(404, 422) },
    }),
    async (c) => {
      const { limit, cursor } = c.req.valid('query');
      return c.json(await webhooks.listDeliveries(c.get('actor'), c.req.valid('param').webhook_id, limit, cursor), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver',
      tags,
      security: bearer,
      summary: 'Send a delivery again',
      description: 'Starts the delivery over from its first attempt, with the same `webhook-id`.',
      request: { params: DeliveryPath },
      responses: { 202: json(DeliveryResponse, 'Queued'), ...errors(404, 409, 422) },
    }),
    async (c) => {
      const { webhook_id, delivery_id } = c.req.valid('param');
      return c.json(await webhooks.redeliver(c.get('actor'), webhook_id, delivery_id), 202);
    },
  );
}

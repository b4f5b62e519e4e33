import { EVENT_PAYLOADS, EVENT_TYPES } from '#schemas/events.ts';
import type { App } from '../openapi.ts';

/**
 * Documents every event payload in the OpenAPI document's `webhooks` section (OpenAPI 3.1), one
 * entry per event type, so the payload schemas appear as components that subscribers can use.
 */
export function documentEventPayloads(app: App): void {
  for (const type of EVENT_TYPES) {
    app.openAPIRegistry.registerWebhook({
      method: 'post',
      path: type,
      tags: ['Events'],
      summary: `The \`${type}\` event`,
      request: { body: { required: true, content: { 'application/json': { schema: EVENT_PAYLOADS[type] } } } },
      responses: { 200: { description: 'Any 2xx answer acknowledges the event' } },
    });
  }
}

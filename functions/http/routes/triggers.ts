import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Services } from '#core/services.ts';
import type { Trigger } from '#core/triggers/triggers.ts';
import { DeleteResponse, ErrorResponse } from '#schemas/bread.ts';
import { HookPath, HookPing, HookStarted, TriggerCreate, TriggerCreated, TriggerInfo, TriggerList, TriggerPath } from '#schemas/triggers.ts';
import type { AppEnv } from '../env.ts';
import { bearer, body, errors, json, type App } from '../openapi.ts';

const tags = ['Triggers'];

/** The hook paths, which authenticate by signature rather than API key (app.ts). */
export const HOOK_PATH_PREFIX = '/v1/hooks/';

/** Inbound triggers (DESIGN.md §7a): their management, and the signed hook that fires them. */
export function triggerRoutes(app: App, { triggers }: Services): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/triggers',
      tags,
      security: bearer,
      summary: 'Create a trigger',
      description:
        'The repo, target or bake the action names must exist. The answer carries the hook `url` to give the sending system and the signing `secret`, shown only here.',
      request: { body: body(TriggerCreate) },
      responses: { 201: json(TriggerCreated, 'Created'), ...errors(404, 422) },
    }),
    async (c) => {
      const { action, description } = c.req.valid('json');
      const trigger = await triggers.create(c.get('actor'), action, description ?? null);
      // The secret must not be cached anywhere, the idempotency store included.
      c.header('cache-control', 'no-store');
      return c.json({ ...withUrl(c, trigger), secret: trigger.secret }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/triggers',
      tags,
      security: bearer,
      summary: 'List your triggers',
      responses: { 200: json(TriggerList, 'Triggers, oldest first, without their secrets') },
    }),
    async (c) => c.json({ triggers: (await triggers.list(c.get('actor'))).map((trigger) => withUrl(c, trigger)) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/triggers/{trigger_id}',
      tags,
      security: bearer,
      summary: 'Get a trigger',
      request: { params: TriggerPath },
      responses: { 200: json(TriggerInfo, 'The trigger, without its secret'), ...errors(404, 422) },
    }),
    async (c) => c.json(withUrl(c, await triggers.get(c.get('actor'), c.req.valid('param').trigger_id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/triggers/{trigger_id}',
      tags,
      security: bearer,
      summary: 'Delete a trigger',
      description: 'Its hook refuses every request from then on.',
      request: { params: TriggerPath },
      responses: { 200: json(DeleteResponse, 'Deleted'), ...errors(404, 422) },
    }),
    async (c) => {
      await triggers.delete(c.get('actor'), c.req.valid('param').trigger_id);
      return c.json({ message: 'Trigger deleted' }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: `${HOOK_PATH_PREFIX}{trigger_id}`,
      tags,
      summary: "Fire a trigger (the sending system's call)",
      description: [
        'No API key: the signature over the raw body authenticates. Either Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with the trigger\'s secret; a timestamp more than 5 minutes away is refused) or GitHub (`X-Hub-Signature-256`, the HMAC-SHA256 of the body keyed with the whole secret string, and `X-GitHub-Delivery`).',
        'A delivery id (`webhook-id` or `X-GitHub-Delivery`) starts its action once: a replay answers 409. An id whose action could not start (400, e.g. a rollout before its stim) is not remembered, so the sender may redeliver it.',
        "GitHub's `ping` event answers 200 and starts nothing. An unknown trigger answers 401 like a wrong signature, so trigger ids cannot be probed; a signed request whose repo, target or bake has since been deleted answers 404.",
      ].join('\n\n'),
      request: { params: HookPath },
      responses: {
        202: json(HookStarted, 'The action started, as the trigger\'s owner'),
        200: json(HookPing, 'A GitHub ping, verified; nothing started'),
        ...errors(400, 404, 409, 413),
        401: json(ErrorResponse, 'The signature is missing or wrong, its timestamp is more than 5 minutes away, or the trigger does not exist'),
      },
    }),
    async (c) => {
      const { trigger_id } = c.req.valid('param');
      const outcome = await triggers.fire(trigger_id, (name) => c.req.header(name), c.get('rawBody') ?? Buffer.alloc(0));
      if (outcome.kind === 'ping') return c.json({ trigger_id, message: 'Ping received; the trigger is ready.' }, 200);
      return c.json({ trigger_id, action: outcome.action, started: outcome.started }, 202);
    },
  );
}

function withUrl(c: Context<AppEnv>, trigger: Trigger) {
  const { id, action, description, created_at } = trigger;
  return { id, url: `${new URL(c.req.url).origin}${HOOK_PATH_PREFIX}${id}`, action, description, created_at };
}

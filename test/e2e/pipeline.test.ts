/**
 * Issue 13 end to end on the embedded default, with the real engine and the toy model: a signed
 * trigger starts a bake's pipeline, which runs stim, rollout and bake from empty targets, advanced
 * by job events alone; a second trigger runs a child bake on the first one's checkpoint
 * (sequential baking), skipping the first's finished jobs. A receiver subscribed to every event
 * verifies each delivery with the `standardwebhooks` library and records what it heard.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TEACHER_PROMPT, TOY_MODEL } from '#local/demo-recipe.ts';
import { startLocalServer, type LocalServer } from '#local/server.ts';

const REPO = 'pipes';
let server: LocalServer;
let dataDir: string;
let webhookId: string;

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminApiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  expect(response.ok, `${method} ${path} → ${response.status} ${text}`).toBe(true);
  return { status: response.status, body: JSON.parse(text) };
}

/** An event as the receiver got it: the `webhook-id` header and the verified payload. */
interface Received {
  webhookId: string;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * The user's endpoint: every request must verify with the webhook's secret; verified events are
 * recorded in arrival order, refusals kept to fail the test.
 */
class Receiver {
  readonly received: Received[] = [];
  readonly refused: string[] = [];
  secret = '';
  private readonly http: Server = createServer((request, response) => {
    void readBody(request).then((body) => {
      try {
        const payload = new Webhook(this.secret).verify(body, request.headers as Record<string, string>) as Omit<Received, 'webhookId'>;
        this.received.push({ webhookId: request.headers['webhook-id'] as string, ...payload });
        response.writeHead(204).end();
      } catch (error) {
        this.refused.push(`${String(error)}: ${body}`);
        response.writeHead(400).end();
      }
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/bakehouse`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.http.close(() => resolve()));
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const receiver = new Receiver();

/** Fires a trigger as GitHub does on a push: `X-Hub-Signature-256` keyed with the whole secret string. */
function pushFromGitHub(url: string, secret: string) {
  const body = JSON.stringify({ ref: 'refs/heads/main', after: randomUUID().replaceAll('-', ''), repository: { full_name: 'acme/recipes' }, pusher: { name: 'ci' } });
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
}

/** Fires a trigger as a Standard Webhooks sender does, signed with the `standardwebhooks` library. */
function postStandardWebhook(url: string, secret: string) {
  const body = JSON.stringify({ reason: 'nightly' });
  const id = `msg_${randomUUID()}`;
  const at = new Date();
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, at, body),
    },
    body,
  });
}

/** Creates a pipeline trigger for the bake, fires it with `fire`, and waits until the pipeline is no longer running. */
async function triggerPipeline(bake: string, fire: (url: string, secret: string) => Promise<Response>) {
  const trigger = (await call('POST', '/v1/triggers', { action: { type: 'pipeline', repo: REPO, bake } })).body as { url: string; secret: string };
  const response = await fire(trigger.url, trigger.secret);
  const text = await response.text();
  expect(response.status, text).toBe(202);
  expect(JSON.parse(text).started).toEqual({ kind: 'pipeline', repo: REPO, name: bake, status: 'running', job_id: null });
  return vi.waitFor(
    async () => {
      const { body } = await call('GET', `/v1/repo/${REPO}/bakes/${bake}/pipeline`);
      expect(body.status).not.toBe('running');
      return body;
    },
    { timeout: 8 * 60_000, interval: 500 },
  );
}

/** A small target: a few hardcoded questions, one trajectory each. */
const target = (name: string, model?: string) => ({
  target_name: name,
  template: 'default',
  overrides: {
    teacher_prompt: 'teacher',
    student_prompt: 'student',
    generators: [{ type: 'hardcoded', questions: ['What is the capital of France?', 'Name a colour.', 'How many legs has a cat?', 'Say hello.'] }],
    num_traj_per_stimulus: 1,
    max_tokens: 24,
    ...(model ? { model_name: model } : {}),
  },
});

const bake = (name: string, dataset: string, parent?: string) => ({
  bake_name: name,
  template: 'default',
  overrides: { datasets: [{ target: dataset, weight: 1 }], epochs: 1, micro_batch_size: 4, ...(parent ? { model: { parent_model_name: parent } } : {}) },
});

/** The events one pipeline's run produces, in the order they happen. */
const pipelineEvents = (targetName: string, bakeName: string) => [
  { type: 'stim.started', resource: targetName },
  { type: 'stim.completed', resource: targetName },
  { type: 'rollout.started', resource: targetName },
  { type: 'rollout.completed', resource: targetName },
  { type: 'bake.started', resource: bakeName },
  { type: 'bake.completed', resource: bakeName },
  { type: 'pipeline.completed', resource: bakeName },
];

const resourceOf = (event: Received) => (event.data.target ?? event.data.bake) as string;
const eventKey = (type: string, resource: string) => `${type} ${resource}`;

/** Each event heard, once: every delivery of one event carries the same `webhook-id` and payload, and no event has two ids. */
function distinctEvents(received: Received[]): Map<string, Received> {
  const byWebhookId = new Map<string, Received>();
  for (const event of received) {
    const first = byWebhookId.get(event.webhookId);
    if (first) expect(event, `a repeated delivery of ${event.webhookId}`).toEqual(first);
    else byWebhookId.set(event.webhookId, event);
  }
  const byKey = new Map<string, Received>();
  for (const event of byWebhookId.values()) {
    const key = eventKey(event.type, resourceOf(event));
    expect(byKey.get(key)?.webhookId, `${key} delivered under two webhook-ids`).toBeUndefined();
    byKey.set(key, event);
  }
  return byKey;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-e2e-pipeline-'));
  server = await startLocalServer({ port: 0, dataDir, serve });
  const receiverUrl = await receiver.listen();
  const webhook = (await call('POST', '/v1/webhooks', { url: receiverUrl, events: ['*'] })).body;
  receiver.secret = webhook.secret;
  webhookId = webhook.id;
  await call('POST', '/v1/repo', { repo_name: REPO, base_model: TOY_MODEL });
  await call('POST', `/v1/repo/${REPO}/prompts`, { prompt_name: 'teacher', messages: [{ role: 'system', content: TEACHER_PROMPT }] });
  await call('POST', `/v1/repo/${REPO}/prompts`, { prompt_name: 'student', messages: [] });
});

afterAll(async () => {
  await server?.close();
  await receiver.close();
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

describe('triggered pipelines, heard through webhooks', { timeout: 20 * 60_000 }, () => {
  it('a GitHub push bakes a parent from empty targets, a signed call bakes its child, and the receiver hears every step once, verified and in order', async () => {
    await call('POST', `/v1/repo/${REPO}/targets`, target('first_t'));
    await call('POST', `/v1/repo/${REPO}/bakes`, bake('first', 'first_t'));
    const first = await triggerPipeline('first', pushFromGitHub);
    expect(first, JSON.stringify(first)).toMatchObject({ status: 'complete', error: null });
    expect(first.steps.map((step: { kind: string; status: string }) => `${step.kind}:${step.status}`)).toEqual(['stim:complete', 'rollout:complete', 'bake:complete']);

    const parent = (await call('GET', `/v1/repo/${REPO}/bakes/first`)).body.model_name[0] as string;
    await call('POST', `/v1/repo/${REPO}/targets`, target('second_t', parent));
    await call('POST', `/v1/repo/${REPO}/bakes`, bake('second', 'second_t', parent));
    const second = await triggerPipeline('second', postStandardWebhook);
    expect(second, JSON.stringify(second)).toMatchObject({ status: 'complete', error: null });
    // The first bake's jobs are reused as they are; only the new target and bake run.
    expect(second.steps.filter((step: { kind: string; name: string }) => step.name === 'first' || step.name === 'first_t').map((step: { job_id: number }) => step.job_id)).toEqual(
      first.steps.map((step: { job_id: number }) => step.job_id),
    );
    const child = (await call('GET', `/v1/repo/${REPO}/bakes/second`)).body;
    expect(child.status).toBe('complete');
    expect(child.model_name[0]).toMatch(/^admin\/pipes\/second\/\d+$/);

    // Deliveries leave as events happen; the last ones may still be on their way.
    const expected = [...pipelineEvents('first_t', 'first'), ...pipelineEvents('second_t', 'second')];
    const heard = await vi.waitFor(
      () => {
        const events = distinctEvents(receiver.received);
        expect([...events.keys()].sort()).toEqual(expected.map(({ type, resource }) => eventKey(type, resource)).sort());
        return events;
      },
      { timeout: 60_000, interval: 250 },
    );
    expect(receiver.refused).toEqual([]);

    for (const [pipeline, targetName, bakeName] of [[first, 'first_t', 'first'], [second, 'second_t', 'second']] as const) {
      const jobIds = pipeline.steps.filter((step: { name: string }) => step.name === targetName || step.name === bakeName).map((step: { job_id: number }) => step.job_id);
      const events = pipelineEvents(targetName, bakeName).map(({ type, resource }) => heard.get(eventKey(type, resource))!);
      // Deliveries are sent concurrently and retried independently, so arrival order is not a
      // guarantee; the order of what happened is in the payload timestamps.
      const timestamps = events.map((event) => event.timestamp);
      expect(timestamps, events.map((event) => event.type).join(', ')).toEqual([...timestamps].sort());
      for (const event of events.slice(0, 4)) expect(event.data).toMatchObject({ repo: REPO, target: targetName, job_id: event.type.startsWith('stim') ? jobIds[0] : jobIds[1], error: null });
      const baked = (await call('GET', `/v1/repo/${REPO}/bakes/${bakeName}`)).body;
      expect(events[5]!.data).toEqual({ repo: REPO, bake: bakeName, job_id: jobIds[2], status: 'complete', error: null, model_names: baked.model_name, loss: baked.loss });
      expect(baked.loss).toMatchObject({ final_loss: expect.any(Number) });
      expect(events[6]!.data).toMatchObject({ repo: REPO, bake: bakeName, status: 'complete', error: null, steps: pipeline.steps });
    }
    // The delivery log agrees: one delivery per event, each taken by the endpoint.
    await vi.waitFor(
      async () => {
        const { body } = await call('GET', `/v1/webhooks/${webhookId}/deliveries?limit=100`);
        expect(body.data.map((delivery: { event_id: string }) => delivery.event_id).sort()).toEqual([...heard.values()].map((event) => event.webhookId).sort());
        for (const delivery of body.data) expect(delivery).toMatchObject({ state: 'delivered', status_code: 204, error: null });
      },
      { timeout: 30_000, interval: 250 },
    );
  });
});

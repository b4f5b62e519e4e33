/**
 * Outbound webhooks through the HTTP API, delivering to a real local HTTP receiver with the real
 * Node transport. The delivery queue is driven by hand and time by a fake clock, so retries over
 * a day run in milliseconds.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveWithDns, sendWebhook } from '#adapters/webhook-transport.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import type { DomainEvent } from '#core/events/events.ts';
import { createServices, type Services } from '#core/services.ts';
import type { DeliveryMessage, DeliveryQueue, DestinationPolicy, Resolver } from '#core/webhooks/ports.ts';
import { MAX_ATTEMPTS, RETRY_DELAYS_MS } from '#core/webhooks/retry-schedule.ts';
import { createApp } from '#http/app.ts';
import { startLocalServer } from '#local/server.ts';
import type { Clock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';
import { ADMIN_KEY, BASE_MODELS, createUserKey, DEFAULT_BASE_MODEL, expectError, seedTarget, waitForJob, type ApiResponse, type RequestFn } from '#test/support/app.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { createTestJobPorts, type TestJobPorts } from '#test/support/test-engine.ts';

/** Starts at the real time (receivers check signature timestamps, the Store checks item expiry). */
class FakeClock implements Clock {
  ms = Math.floor(Date.now() / 1000) * 1000;
  now = () => new Date(this.ms);
  advance(ms: number) {
    this.ms += ms;
  }
}

/** A delivery queue whose messages are handed over only when a test says so, at the fake time. */
class ManualQueue implements DeliveryQueue {
  messages: { message: DeliveryMessage; dueAt: number }[] = [];
  constructor(private readonly clock: FakeClock) {}
  async send(message: DeliveryMessage, options: { delaySeconds?: number } = {}) {
    this.messages.push({ message, dueAt: this.clock.ms + (options.delaySeconds ?? 0) * 1000 });
  }
  /** Hands over every message due by now, including those the handling sends for now. */
  async runDue(services: Services) {
    for (;;) {
      const index = this.messages.findIndex(({ dueAt }) => dueAt <= this.clock.ms);
      if (index < 0) return;
      const [due] = this.messages.splice(index, 1);
      await services.webhooks.handleDelivery(due!.message);
    }
  }
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

/** A local endpoint that records what it is sent and answers with `status` (and `location`). */
class Receiver {
  received: Received[] = [];
  status = 200;
  location?: string;
  private server!: Server;
  url = '';

  async start() {
    this.server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        this.received.push({ headers: request.headers, body, path: request.url ?? '' });
        response.writeHead(this.status, this.location ? { location: this.location } : {}).end('ok');
      });
    });
    await new Promise<void>((ready) => this.server.listen(0, '127.0.0.1', ready));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port() {
    return (this.server.address() as AddressInfo).port;
  }

  close() {
    return new Promise<void>((done) => this.server.close(() => done()));
  }
}

const LOCAL_POLICY: DestinationPolicy = { allowHttp: true, allowLoopback: true, allowPrivate: false };

interface Harness {
  services: Services;
  request: RequestFn;
  queue: ManualQueue;
  clock: FakeClock;
  names: Map<string, string[]>;
  close(): Promise<void>;
}

let dir: string;
let receiver: Receiver;
let harness: Harness;
let jobPorts: TestJobPorts[];

async function start(options: { policy?: DestinationPolicy; clock?: FakeClock; resolve?: Resolver; store?: Store } = {}): Promise<Harness> {
  const store = options.store ?? new SqliteStore(join(dir, 'bakehouse.db'));
  const jobs = createTestJobPorts();
  jobPorts.push(jobs);
  const clock = options.clock ?? new FakeClock();
  const queue = new ManualQueue(clock);
  const names = new Map<string, string[]>();
  const resolve: Resolver =
    options.resolve ??
    (async (hostname) => {
      const addresses = names.get(hostname);
      if (!addresses) throw new Error(`no such host ${hostname}`);
      return addresses;
    });
  const services = createServices({
    store,
    ...jobs,
    clock,
    catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL },
    webhookDelivery: { queue, resolve, send: sendWebhook, policy: options.policy ?? LOCAL_POLICY },
  });
  jobs.compute.onEvent = (event) => services.pipeline.applyEvent(event);
  jobs.queue.consume(({ jobId }) => services.pipeline.dispatch(jobId));
  await services.apiKeys.ensure(ADMIN_KEY, ADMIN_USER, true);
  const app = createApp(services);
  const request: RequestFn = async (method, path, { body, key = ADMIN_KEY } = {}) => {
    const headers: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text && /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : text, text };
  };
  return { services, request, queue, clock, names, close: () => store.close() };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bakehouse-webhooks-'));
  jobPorts = [];
  receiver = new Receiver();
  await receiver.start();
  harness = await start();
});

afterEach(async () => {
  await harness.close();
  for (const jobs of jobPorts) await jobs.close();
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

async function subscribe(body: Record<string, unknown> = {}, request = harness.request): Promise<ApiResponse['body']> {
  const response = await request('POST', '/v1/webhooks', { body: { url: `${receiver.url}/hook`, events: ['stim.completed'], ...body } });
  expect(response.status, response.text).toBe(201);
  return response.body;
}

function stimCompleted(id = 'evt_job_7_complete', userId = ADMIN_USER): DomainEvent {
  return { id, userId, type: 'stim.completed', timestamp: '2026-03-01T11:59:00.000Z', data: { repo: 'r1', target: 't1', job_id: 7, status: 'complete', error: null } };
}

const deliveries = async (webhookId: string) => {
  const response = await harness.request('GET', `/v1/webhooks/${webhookId}/deliveries`);
  expect(response.status, response.text).toBe(200);
  return response.body.data as Record<string, unknown>[];
};

describe('webhook subscriptions', () => {
  it('creates a webhook and shows its secret only in the creation answer', async () => {
    const created = await subscribe({ description: 'CI listener' });
    expect(created).toMatchObject({ url: `${receiver.url}/hook`, events: ['stim.completed'], description: 'CI listener', disabled: false, disabled_reason: null });
    expect(created.id).toMatch(/^wh_[0-9a-f]{24}$/);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(created.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);

    const fetched = await harness.request('GET', `/v1/webhooks/${created.id}`);
    expect(fetched.status).toBe(200);
    const { secret: _secret, ...withoutSecret } = created;
    expect(fetched.body).toEqual(withoutSecret);
    const listed = await harness.request('GET', '/v1/webhooks');
    expect(listed.body).toEqual({ webhooks: [withoutSecret] });
  });

  it('changes, disables, re-enables and deletes a webhook', async () => {
    const { id } = await subscribe();
    const patched = await harness.request('PATCH', `/v1/webhooks/${id}`, { body: { events: ['*'], url: `${receiver.url}/other`, disabled: true } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ events: ['*'], url: `${receiver.url}/other`, disabled: true });
    expect((await harness.request('PATCH', `/v1/webhooks/${id}`, { body: { disabled: false } })).body.disabled).toBe(false);
    expect((await harness.request('PATCH', `/v1/webhooks/${id}`, { body: {} })).body).toMatchObject({ events: ['*'], disabled: false });
    expectError(await harness.request('PATCH', `/v1/webhooks/${id}`, { body: { url: 'http://192.168.0.2/' } }), 422, 'VALIDATION_ERROR', /192\.168\.0\.2 is a private-network address/);

    expect((await harness.request('DELETE', `/v1/webhooks/${id}`)).status).toBe(204);
    expectError(await harness.request('GET', `/v1/webhooks/${id}`), 404, 'RESOURCE_NOT_FOUND', `Webhook '${id}' not found.`);
    expectError(await harness.request('DELETE', `/v1/webhooks/${id}`), 404, 'RESOURCE_NOT_FOUND');
  });

  it('refuses unknown event types, an empty list, a bad URL and unknown fields with 422', async () => {
    const post = (body: unknown) => harness.request('POST', '/v1/webhooks', { body });
    expectError(await post({ url: receiver.url, events: ['stim.exploded'] }), 422, 'VALIDATION_ERROR');
    expectError(await post({ url: receiver.url, events: [] }), 422, 'VALIDATION_ERROR');
    expectError(await post({ url: 'not a url', events: ['*'] }), 422, 'VALIDATION_ERROR', "Webhook URL 'not a url' is not a valid absolute URL.");
    expectError(await post({ url: 'ftp://example.com/x', events: ['*'] }), 422, 'VALIDATION_ERROR', /must use http or https/);
    expectError(await post({ url: receiver.url, events: ['*'], secret: 'mine' }), 422, 'VALIDATION_ERROR');
    expect((await harness.request('GET', '/v1/webhooks')).body).toEqual({ webhooks: [] });
  });

  it("answers 404 for another user's webhook on every route", async () => {
    const { id } = await subscribe();
    const bob = await createUserKey(harness.request, 'bob');
    const asBob = (method: string, path: string, body?: unknown) => harness.request(method, path, { key: bob, body });
    expect((await asBob('GET', '/v1/webhooks')).body).toEqual({ webhooks: [] });
    expectError(await asBob('GET', `/v1/webhooks/${id}`), 404, 'RESOURCE_NOT_FOUND');
    expectError(await asBob('PATCH', `/v1/webhooks/${id}`, { disabled: true }), 404, 'RESOURCE_NOT_FOUND');
    expectError(await asBob('POST', `/v1/webhooks/${id}/test`), 404, 'RESOURCE_NOT_FOUND');
    expectError(await asBob('GET', `/v1/webhooks/${id}/deliveries`), 404, 'RESOURCE_NOT_FOUND');
    expectError(await asBob('DELETE', `/v1/webhooks/${id}`), 404, 'RESOURCE_NOT_FOUND');
    expect((await harness.request('GET', `/v1/webhooks/${id}`)).status).toBe(200);
  });
});

describe('webhook delivery', () => {
  it('POSTs the event payload signed per Standard Webhooks, once per event however often it is published', async () => {
    const { id, secret } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    await harness.services.webhooks.publish(stimCompleted());
    await harness.services.webhooks.publish({ ...stimCompleted('evt_other'), type: 'bake.completed' });
    await harness.services.webhooks.publish(stimCompleted('evt_bobs', 'bob'));
    await harness.queue.runDue(harness.services);

    expect(receiver.received).toHaveLength(1);
    const [{ headers, body, path }] = receiver.received as [Received];
    expect(path).toBe('/hook');
    expect(headers['content-type']).toBe('application/json');
    expect(headers['webhook-id']).toBe('evt_job_7_complete');
    expect(headers['webhook-timestamp']).toBe(String(harness.clock.ms / 1000));
    const verified = new Webhook(secret).verify(body, headers as Record<string, string>);
    expect(verified).toEqual({ type: 'stim.completed', version: 1, timestamp: '2026-03-01T11:59:00.000Z', data: stimCompleted().data });
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(body, headers as Record<string, string>)).toThrow();

    const [delivery] = await deliveries(id);
    expect(delivery).toMatchObject({ event_id: 'evt_job_7_complete', event_type: 'stim.completed', state: 'delivered', attempt: 1, status_code: 200, error: null, next_attempt_at: null });
    expect(delivery!.latency_ms).toEqual(expect.any(Number));
  });

  it("delivers the job flow's own events: a stim job's start and completion", async () => {
    const { secret } = await subscribe({ events: ['stim.started', 'stim.completed'] });
    await seedTarget(harness.request, 'r1');
    const started = await harness.request('POST', '/v1/repo/r1/targets/t1/stim');
    expect(started.status, started.text).toBeLessThan(300);
    expect((await waitForJob(harness.request, '/v1/repo/r1/targets/t1/stim')).body.status).toBe('complete');
    await vi.waitFor(async () => {
      await harness.queue.runDue(harness.services);
      expect(receiver.received).toHaveLength(2);
    });
    const payloads = receiver.received.map(({ body, headers }) => new Webhook(secret).verify(body, headers as Record<string, string>) as { type: string; data: unknown });
    expect(payloads.map(({ type }) => type).sort()).toEqual(['stim.completed', 'stim.started']);
    expect(payloads[0]!.data).toMatchObject({ repo: 'r1', target: 't1', job_id: started.body.job_id });
  });

  it('sends a webhook.test event from the test route', async () => {
    const { id, secret } = await subscribe();
    const response = await harness.request('POST', `/v1/webhooks/${id}/test`);
    expect(response.status, response.text).toBe(202);
    expect(response.body).toMatchObject({ event_type: 'webhook.test', state: 'pending', attempt: 0 });
    await harness.queue.runDue(harness.services);
    const payload = new Webhook(secret).verify(receiver.received[0]!.body, receiver.received[0]!.headers as Record<string, string>);
    expect(payload).toMatchObject({ type: 'webhook.test', data: { webhook_id: id } });
  });

  it('retries on the Standard Webhooks schedule, then disables an endpoint failing throughout', async () => {
    receiver.status = 500;
    const { id } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    const started = harness.clock.ms;
    await harness.queue.runDue(harness.services);

    let elapsed = 0;
    for (const [index, delay] of RETRY_DELAYS_MS.entries()) {
      const [pending] = await deliveries(id);
      expect(pending).toMatchObject({ state: 'pending', attempt: index + 1, status_code: 500, next_attempt_at: new Date(started + elapsed + delay).toISOString() });
      expect(pending!.error).toBe('The endpoint answered HTTP 500; only a 2xx answer counts as delivered.');
      // Not a moment early.
      harness.clock.advance(delay - 1000);
      await harness.queue.runDue(harness.services);
      expect(receiver.received).toHaveLength(index + 1);
      harness.clock.advance(1000);
      elapsed += delay;
      await harness.queue.runDue(harness.services);
      expect(receiver.received).toHaveLength(index + 2);
    }

    expect(receiver.received).toHaveLength(MAX_ATTEMPTS);
    expect(new Set(receiver.received.map(({ headers }) => headers['webhook-id']))).toEqual(new Set(['evt_job_7_complete']));
    expect((await deliveries(id))[0]).toMatchObject({ state: 'failed', attempt: MAX_ATTEMPTS, next_attempt_at: null });
    const webhook = (await harness.request('GET', `/v1/webhooks/${id}`)).body;
    expect(webhook.disabled).toBe(true);
    expect(webhook.disabled_reason).toMatch(/^Disabled automatically on .*: every delivery attempt since .* failed \(8 attempts of event evt_job_7_complete; last: The endpoint answered HTTP 500/);

    // Disabled: new events are not delivered, tests and redeliveries are refused until re-enabled.
    await harness.services.webhooks.publish(stimCompleted('evt_later'));
    expect(await deliveries(id)).toHaveLength(1);
    expectError(await harness.request('POST', `/v1/webhooks/${id}/test`), 409, 'RESOURCE_CONFLICT', /is disabled; re-enable it/);
    const reenabled = await harness.request('PATCH', `/v1/webhooks/${id}`, { body: { disabled: false } });
    expect(reenabled.body).toMatchObject({ disabled: false, disabled_reason: null });
  });

  it('keeps an endpoint enabled when a delivery succeeded while another was failing', async () => {
    receiver.status = 500;
    const { id } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted('evt_first'));
    await harness.queue.runDue(harness.services);
    // Before the first one's retry is due.
    receiver.status = 200;
    harness.clock.advance(1_000);
    await harness.services.webhooks.publish(stimCompleted('evt_second'));
    await harness.queue.runDue(harness.services);
    receiver.status = 500;
    for (const delay of RETRY_DELAYS_MS) {
      harness.clock.advance(delay);
      await harness.queue.runDue(harness.services);
    }
    const states = Object.fromEntries((await deliveries(id)).map((delivery) => [delivery.event_id, delivery.state]));
    expect(states).toEqual({ evt_first: 'failed', evt_second: 'delivered' });
    expect((await harness.request('GET', `/v1/webhooks/${id}`)).body.disabled).toBe(false);
  });

  it('redelivers a delivery from its first attempt under the same webhook-id', async () => {
    const { id, secret } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    await harness.queue.runDue(harness.services);
    const [delivery] = await deliveries(id);

    const response = await harness.request('POST', `/v1/webhooks/${id}/deliveries/${delivery!.id}/redeliver`);
    expect(response.status, response.text).toBe(202);
    expect(response.body).toMatchObject({ id: delivery!.id, state: 'pending', attempt: 0 });
    await harness.queue.runDue(harness.services);

    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[1]!.headers['webhook-id']).toBe('evt_job_7_complete');
    new Webhook(secret).verify(receiver.received[1]!.body, receiver.received[1]!.headers as Record<string, string>);
    expect((await deliveries(id))[0]).toMatchObject({ state: 'delivered', attempt: 1 });
    expectError(await harness.request('POST', `/v1/webhooks/${id}/deliveries/dlv_nope/redeliver`), 404, 'RESOURCE_NOT_FOUND', `Delivery 'dlv_nope' not found for webhook '${id}'.`);
  });

  it('sends after a restart what was stored but never sent: the next sweep queues it', async () => {
    const { id } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    // The process stops before its queue hands the message over: the in-process queue loses it.
    await harness.close();
    harness = await start({ clock: harness.clock });
    expect(receiver.received).toHaveLength(0);

    expect(await harness.services.webhooks.sweepDeliveries()).toBe(1);
    await harness.queue.runDue(harness.services);
    expect(receiver.received).toHaveLength(1);
    expect((await deliveries(id))[0]).toMatchObject({ state: 'delivered' });
    // Delivered deliveries are off the sweep's list.
    expect(await harness.services.webhooks.sweepDeliveries()).toBe(0);
  });

  it('gives up the pending deliveries of a deleted webhook', async () => {
    receiver.status = 503;
    const { id } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    await harness.queue.runDue(harness.services);
    expect((await harness.request('DELETE', `/v1/webhooks/${id}`)).status).toBe(204);
    harness.clock.advance(RETRY_DELAYS_MS[0]);
    await harness.queue.runDue(harness.services);
    expect(receiver.received).toHaveLength(1);
    harness.clock.advance(RETRY_DELAYS_MS[1]);
    expect(await harness.services.webhooks.sweepDeliveries()).toBe(0);
  });

  it('does not send one attempt twice when a duplicate message arrives', async () => {
    await subscribe();
    await harness.services.webhooks.publish(stimCompleted());
    const [first] = harness.queue.messages;
    harness.queue.messages.push({ ...first! });
    await harness.queue.runDue(harness.services);
    expect(receiver.received).toHaveLength(1);
  });

  it('pages the delivery log newest first', async () => {
    const { id } = await subscribe();
    for (const n of [1, 2, 3]) {
      harness.clock.advance(1000);
      await harness.services.webhooks.publish(stimCompleted(`evt_${n}`));
    }
    const first = await harness.request('GET', `/v1/webhooks/${id}/deliveries?limit=2`);
    expect(first.body.data.map((d: { event_id: string }) => d.event_id)).toEqual(['evt_3', 'evt_2']);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await harness.request('GET', `/v1/webhooks/${id}/deliveries?limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`);
    expect(second.body.data.map((d: { event_id: string }) => d.event_id)).toEqual(['evt_1']);
    expectError(await harness.request('GET', `/v1/webhooks/${id}/deliveries?limit=0`), 422, 'VALIDATION_ERROR');
    expectError(await harness.request('GET', `/v1/webhooks/${id}/deliveries?cursor=garbage`), 422, 'VALIDATION_ERROR', /is not one this delivery list gave; list again from the first page/);
  });
});

describe('SSRF guard', () => {
  const refused = [
    ['http://10.1.2.3/', '10.1.2.3 is a private-network address'],
    ['http://172.16.0.1/', '172.16.0.1 is a private-network address'],
    ['http://192.168.1.10/', '192.168.1.10 is a private-network address'],
    ['http://100.64.0.1/', '100.64.0.1 is a carrier-grade NAT address'],
    ['http://169.254.169.254/latest/meta-data/', '169.254.169.254 is a link-local address'],
    ['http://0.0.0.0/', '0.0.0.0 is a unspecified address'],
    ['http://[::]/', ':: is a unspecified address'],
    ['http://[fe80::1]/', 'fe80::1 is a link-local address'],
    ['http://[fd00::1]/', 'fd00::1 is a unique-local address'],
    ['http://[::ffff:10.0.0.1]/', '::ffff:a00:1 is a private-network address'],
    ['http://[::ffff:169.254.169.254]/', 'is a link-local address'],
    ['http://metadata.google.internal/', "'metadata.google.internal' is a cloud metadata service"],
  ] as const;

  for (const [url, reason] of refused) {
    it(`refuses ${url} at registration`, async () => {
      const response = await harness.request('POST', '/v1/webhooks', { body: { url, events: ['*'] } });
      expectError(response, 422, 'VALIDATION_ERROR', new RegExp(reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    });
  }

  it('refuses a name that resolves to a private address, naming both', async () => {
    harness.names.set('hooks.internal.example', ['93.184.216.34', '10.0.0.7']);
    const response = await harness.request('POST', '/v1/webhooks', { body: { url: 'http://hooks.internal.example/x', events: ['*'] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Webhook URL host 'hooks.internal.example' resolves to 10.0.0.7, a private-network address; webhooks may only reach public addresses (an operator can allow internal ones with BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1).");
  });

  it('refuses a name that does not resolve', async () => {
    const response = await harness.request('POST', '/v1/webhooks', { body: { url: 'http://nowhere.example/x', events: ['*'] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Webhook URL host 'nowhere.example' does not resolve to any address; check the name.");
  });

  it('refuses loopback and plain http where the operator has not allowed them, and allows internal addresses when told to', async () => {
    await harness.close();
    harness = await start({ policy: { allowHttp: false, allowLoopback: false, allowPrivate: false } });
    const post = (url: string) => harness.request('POST', '/v1/webhooks', { body: { url, events: ['*'] } });
    expectError(await post('http://93.184.216.34/'), 422, 'VALIDATION_ERROR', "Webhook URL 'http://93.184.216.34/' must use https: this deployment refuses plain http.");
    expectError(await post('https://127.0.0.1/'), 422, 'VALIDATION_ERROR', /127\.0\.0\.1 is a loopback address/);
    expectError(await post('https://[::1]/'), 422, 'VALIDATION_ERROR', /::1 is a loopback address/);
    expectError(await post('https://localhost/'), 422, 'VALIDATION_ERROR', /'localhost' resolves to 127\.0\.0\.1, a loopback address/);
    expect((await post('https://93.184.216.34/')).status).toBe(201);

    await harness.close();
    harness = await start({ policy: { allowHttp: false, allowLoopback: false, allowPrivate: true } });
    expect((await harness.request('POST', '/v1/webhooks', { body: { url: 'https://10.0.0.1/', events: ['*'] } })).status).toBe(201);
  });

  it('connects to the address it checked, and checks the name again before every attempt', async () => {
    harness.names.set('hooks.example', ['127.0.0.1']);
    const { id } = await subscribe({ url: `http://hooks.example:${receiver.port}/pinned` });
    await harness.services.webhooks.publish(stimCompleted('evt_one'));
    await harness.queue.runDue(harness.services);
    // hooks.example is not in DNS: the request reached the receiver through the checked address.
    expect(receiver.received.map(({ path, headers }) => [path, headers.host])).toEqual([['/pinned', `hooks.example:${receiver.port}`]]);

    harness.names.set('hooks.example', ['10.9.8.7']);
    await harness.services.webhooks.publish(stimCompleted('evt_two'));
    await harness.queue.runDue(harness.services);
    expect(receiver.received).toHaveLength(1);
    const latest = (await deliveries(id)).find((delivery) => delivery.event_id === 'evt_two');
    expect(latest).toMatchObject({ state: 'pending', attempt: 1, status_code: null });
    expect(latest!.error).toMatch(/'hooks\.example' resolves to 10\.9\.8\.7, a private-network address/);
  });

  it('does not follow redirects: a 3xx is a failed attempt', async () => {
    const target = new Receiver();
    await target.start();
    try {
      receiver.status = 307;
      receiver.location = `${target.url}/elsewhere`;
      const { id } = await subscribe();
      await harness.services.webhooks.publish(stimCompleted());
      await harness.queue.runDue(harness.services);
      expect(receiver.received).toHaveLength(1);
      expect(target.received).toHaveLength(0);
      expect((await deliveries(id))[0]).toMatchObject({
        state: 'pending',
        status_code: 307,
        error: 'The endpoint answered HTTP 307; redirects are not followed, so give the webhook its final URL.',
      });
    } finally {
      await target.close();
    }
  });

  it('resolves real names with the system resolver', async () => {
    expect(await resolveWithDns('localhost')).toEqual(expect.arrayContaining([expect.stringMatching(/^(127\.0\.0\.1|::1)$/)]));
  });
});

describe('the embedded server', () => {
  it('delivers through its in-process queue to a local tool on loopback', async () => {
    const server = await startLocalServer({ port: 0, dataDir: join(dir, 'server'), adminApiKey: ADMIN_KEY, serve });
    try {
      const call = (method: string, path: string, body?: unknown) =>
        fetch(`${server.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
      const created = await call('POST', '/v1/webhooks', { url: `http://localhost:${receiver.port}/local`, events: ['*'] });
      expect(created.status).toBe(201);
      const { id, secret } = (await created.json()) as { id: string; secret: string };
      expect((await call('POST', `/v1/webhooks/${id}/test`)).status).toBe(202);
      await vi.waitFor(() => expect(receiver.received).toHaveLength(1), { timeout: 5_000 });
      expect(new Webhook(secret).verify(receiver.received[0]!.body, receiver.received[0]!.headers as Record<string, string>)).toMatchObject({ type: 'webhook.test' });
    } finally {
      await server.close();
    }
  });
});

describe('the Node transport', () => {
  async function withServer(onRequest: Parameters<typeof createServer>[1], run: (url: URL) => Promise<void>) {
    const server = createServer(onRequest);
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    try {
      await run(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  }
  const post = (url: URL, timeoutMs: number) => sendWebhook({ url, address: '127.0.0.1', headers: {}, body: '{}', timeoutMs });

  it('gives up on an endpoint that does not answer in time', async () => {
    await withServer(
      () => {},
      async (url) => {
        await expect(post(url, 300)).rejects.toThrow('The endpoint did not answer within 0.3 s.');
      },
    );
  });

  it('takes the status without waiting for a body that never ends', async () => {
    await withServer(
      (_request, response) => {
        response.writeHead(202);
        response.write('still going');
      },
      async (url) => {
        expect(await post(url, 2_000)).toEqual({ status: 202 });
      },
    );
  });

  it('says why an endpoint could not be reached', async () => {
    await expect(post(new URL('http://127.0.0.1:1/'), 2_000)).rejects.toThrow(/^The endpoint could not be reached: connect ECONNREFUSED 127\.0\.0\.1:1$/);
  });
});

describe('on DynamoDB', () => {
  it('retries, delivers, redelivers and pages deliveries as on SQLite', async () => {
    await harness.close();
    harness = await start({ store: await createDynamoTestStore() });
    receiver.status = 500;
    const { id } = await subscribe();
    await harness.services.webhooks.publish(stimCompleted('evt_a'));
    await harness.queue.runDue(harness.services);
    expect((await deliveries(id))[0]).toMatchObject({ state: 'pending', attempt: 1, status_code: 500 });

    receiver.status = 200;
    harness.clock.advance(RETRY_DELAYS_MS[0]);
    await harness.queue.runDue(harness.services);
    const [delivered] = await deliveries(id);
    expect(delivered).toMatchObject({ state: 'delivered', attempt: 2, status_code: 200, error: null });

    expect((await harness.request('POST', `/v1/webhooks/${id}/deliveries/${delivered!.id}/redeliver`)).status).toBe(202);
    await harness.queue.runDue(harness.services);
    expect(receiver.received.map(({ headers }) => headers['webhook-id'])).toEqual(['evt_a', 'evt_a', 'evt_a']);

    for (const event of ['evt_b', 'evt_c']) {
      harness.clock.advance(1000);
      await harness.services.webhooks.publish(stimCompleted(event));
    }
    await harness.queue.runDue(harness.services);
    const first = await harness.request('GET', `/v1/webhooks/${id}/deliveries?limit=2`);
    expect(first.body.data.map((d: { event_id: string }) => d.event_id)).toEqual(['evt_c', 'evt_b']);
    const second = await harness.request('GET', `/v1/webhooks/${id}/deliveries?limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`);
    expect(second.body.data.map((d: { event_id: string }) => d.event_id)).toEqual(['evt_a']);
    expectError(await harness.request('GET', `/v1/webhooks/${id}/deliveries?cursor=garbage`), 422, 'VALIDATION_ERROR');
    expect(await harness.services.webhooks.sweepDeliveries()).toBe(0);
  });
});

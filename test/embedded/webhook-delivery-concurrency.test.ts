/**
 * Webhook delivery shares the embedded server's process with the API and the job flow, so it runs
 * a bounded number of deliveries at once: a receiver that never answers holds those slots and only
 * delays the other deliveries, which wait unattempted, while jobs still start and complete.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessDeliveryQueue } from '#adapters/embedded/in-process-delivery-queue.ts';
import type { DeliveryMessage } from '#core/webhooks/ports.ts';
import { startLocalServer } from '#local/server.ts';
import { ADMIN_KEY } from '#test/support/app.ts';
import { standInEngineCommand } from '#test/support/stand-in-engine-command.ts';

describe('the in-process delivery queue', () => {
  it('runs at most its concurrency at once, keeps one copy of a message sent twice, and starts the next when a slot frees', async () => {
    const queue = new InProcessDeliveryQueue({ concurrency: 2 });
    const started: DeliveryMessage[] = [];
    const finish: (() => void)[] = [];
    queue.consume((message) => {
      started.push(message);
      return new Promise<void>((done) => finish.push(done));
    });
    for (const deliveryId of ['a', 'b', 'c', 'd']) await queue.send({ deliveryId, attempt: 1 });
    // The sweep finding 'c' due again while it waits for a slot.
    await queue.send({ deliveryId: 'c', attempt: 1 });
    await vi.waitFor(() => expect(started).toHaveLength(2));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(started.map(({ deliveryId }) => deliveryId)).toEqual(['a', 'b']);
    expect(queue.waiting).toBe(2);

    finish.shift()!();
    await vi.waitFor(() => expect(started).toHaveLength(3));
    expect(started[2]).toEqual({ deliveryId: 'c', attempt: 1 });
    expect(queue.waiting).toBe(1);

    for (const done of finish.splice(0)) done();
    await vi.waitFor(() => expect(started).toHaveLength(4));
    finish.shift()!();
    await queue.close();
    expect(started.map(({ deliveryId }) => deliveryId)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('refuses a concurrency that is not a positive whole number', () => {
    expect(() => new InProcessDeliveryQueue({ concurrency: 0 })).toThrow(RangeError);
    expect(() => new InProcessDeliveryQueue({ concurrency: 1.5 })).toThrow(RangeError);
  });
});

describe('the embedded server with a receiver that never answers', () => {
  let dir: string;
  const held: ServerResponse[] = [];
  const receiver = createServer((_request, response) => void held.push(response));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bakehouse-delivery-slots-'));
    await new Promise<void>((ready) => receiver.listen(0, '127.0.0.1', ready));
  });
  afterEach(async () => {
    receiver.closeAllConnections();
    await new Promise<void>((done) => receiver.close(() => done()));
    held.length = 0;
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the held slots delay only deliveries: the rest wait unattempted, and a job still starts and completes', async () => {
    const server = await startLocalServer({
      port: 0,
      dataDir: join(dir, 'server'),
      adminApiKey: ADMIN_KEY,
      engineCommand: standInEngineCommand(),
      webhookConcurrency: '2',
      serve,
    });
    try {
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${server.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        expect(response.status, `${method} ${path}`).toBeLessThan(300);
        return (await response.json()) as Record<string, unknown>;
      };
      const { id } = await call('POST', '/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['*'] });
      for (let i = 0; i < 4; i++) await call('POST', `/v1/webhooks/${String(id)}/test`);
      await vi.waitFor(() => expect(held).toHaveLength(2));

      await call('POST', '/v1/repo', { repo_name: 'r1', base_model: 'bakehouse/toy-instruct' });
      await call('POST', '/v1/repo/r1/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'You are a teacher.' }] });
      await call('POST', '/v1/repo/r1/prompts', { prompt_name: 'student', messages: [] });
      const overrides = { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['What is 2+2?'] }] };
      await call('POST', '/v1/repo/r1/targets', { target_name: 't1', template: 'default', overrides });
      await call('POST', '/v1/repo/r1/targets/t1/stim');
      await vi.waitFor(async () => expect((await call('GET', '/v1/repo/r1/targets/t1/stim')).status).toBe('complete'), { timeout: 15_000, interval: 50 });

      // Still only the two held requests; the job's own events wait with the other tests.
      expect(held).toHaveLength(2);
      const waiting = ((await call('GET', `/v1/webhooks/${String(id)}/deliveries?limit=100`)).data as { state: string; attempt: number; error: string | null }[]).filter(
        ({ attempt }) => attempt === 0,
      );
      expect(waiting.length).toBeGreaterThanOrEqual(4);
      expect(waiting.every(({ state, error }) => state === 'pending' && error === null)).toBe(true);

      // Once the receiver answers, the waiting deliveries go out.
      const answerAll = () => {
        for (const response of held.splice(0)) response.writeHead(204).end();
      };
      answerAll();
      await vi.waitFor(
        async () => {
          answerAll();
          const deliveries = (await call('GET', `/v1/webhooks/${String(id)}/deliveries?limit=100`)).data as { state: string }[];
          expect(deliveries.every(({ state }) => state === 'delivered')).toBe(true);
        },
        { timeout: 10_000, interval: 50 },
      );
    } finally {
      await server.close();
    }
  }, 30_000);
});

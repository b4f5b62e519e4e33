/**
 * The training data plane's container entry (functions/handlers/data-plane.ts) as the load
 * balancer reaches it: the app served by Node on PORT, over real HTTP.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { DataPlane } from '../../lib/constructs/data-plane.ts';
import { ADMIN_KEY, createTestApp, type TestApp } from '../support/app.ts';
import { FakeTrainer } from '../support/fake-trainer.ts';
import { useTestApp } from '../support/lambda.ts';

const DATA_PLANE_URL = 'https://loops.acme.example';
const MODEL = 'bakehouse/toy-instruct';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
// The real server, kept so the test can find its port and settings.
const served = vi.hoisted(() => ({}) as { server?: Server });
vi.mock('@hono/node-server', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@hono/node-server')>();
  return { ...actual, serve: (...args: Parameters<typeof actual.serve>) => (served.server = actual.serve(...args) as Server) };
});

let api: TestApp;
let origin: string;

beforeAll(async () => {
  api = await createTestApp();
  useTestApp(runtime, api);
  runtime.dataPlaneUrl = DATA_PLANE_URL;
  vi.stubEnv('PORT', '0');
  // The access log's lines (Powertools JSON on stdout) are the functions' and tested with them.
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  await import('#functions/handlers/data-plane.ts');
  const server = served.server!;
  if (!server.listening) await new Promise((listening) => server.once('listening', listening));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await new Promise((closed) => served.server?.close(closed));
  await api?.close();
});

/** A request as the Loops SDK sends it, through the server's socket. */
async function loops(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${origin}${path}`, {
    method,
    headers: { authorization: `Api-Key ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, body: /json/.test(response.headers.get('content-type') ?? '') && text ? JSON.parse(text) : text };
}

async function createRun(): Promise<{ id: string; base_url: string }> {
  const session = await loops('POST', '/v1/loops/sessions');
  const created = await loops('POST', '/v1/loops/trainers', { session_id: session.body.session.id, base_model: MODEL, lora_rank: 8, replicas: 1, availability_model: 'dedicated' });
  expect(created.status, created.text).toBe(200);
  return created.body.run;
}

describe('the data plane container', () => {
  it('listens on PORT and answers the load balancer’s health check without an API key', async () => {
    const response = await fetch(`${origin}${DataPlane.HEALTH_CHECK_PATH}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'healthy' });
  });

  it('keeps idle connections open longer than the load balancer, so it never reuses one being closed', () => {
    const server = served.server!;
    expect(server.keepAliveTimeout).toBeGreaterThan(DataPlane.IDLE_TIMEOUT.toMilliseconds());
    expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
  });

  it('hands out run base URLs on the data plane, and makes it the trainer’s relay origin', async () => {
    const run = await createRun();
    expect(run.base_url).toBe(`${DATA_PLANE_URL}/loops/trainers/${run.id}`);
    const [spec] = await FakeTrainer.all(api);
    expect(spec!.trainer.run_id).toBe(run.id);
    expect(spec!.trainer.relay_url).toBe(DATA_PLANE_URL);
  });

  it('accepts a forward_backward body of 24 MiB whole, as the Loops SDK may send before it splits a batch', async () => {
    const run = await createRun();
    const tokens = Array.from({ length: 3_300_000 }, (_, index) => index % 1000);
    const body = JSON.stringify({
      data: [{ model_input: { chunks: [{ type: 'encoded_text', tokens }] }, loss_fn_inputs: { target_tokens: { data: tokens, dtype: 'int64', shape: [tokens.length] } }, routed_experts_ref: null }],
      loss_fn: 'cross_entropy',
      run_id: run.id,
      seq_id: 1,
      model: MODEL,
    });
    expect(body.length).toBeGreaterThan(24 * 1024 * 1024);
    const accepted = await loops('POST', `${new URL(run.base_url).pathname}/forward_backward`, body, { 'idempotency-key': 'big-batch', 'x-run-id': run.id });
    expect(accepted.status, accepted.text.slice(0, 300)).toBe(202);
    expect(accepted.body.operation_id).toBe('big-batch');
  });
});

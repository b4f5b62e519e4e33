import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { serve as nodeServe } from '@hono/node-server';
import { ADMIN_USER } from '#core/api-keys.ts';
import { composeEmbedded, type EmbeddedRuntime } from '#functions/composition.ts';
import { createApp } from '#http/app.ts';
import type { AccessLogSink } from '#http/middleware/access-log.ts';

/** The engine environment `npm run setup` creates. */
export const DEFAULT_ENGINE_PYTHON = resolve(import.meta.dirname, '..', '..', 'batch', 'engine', '.venv', 'bin', 'python');

/** The web console as `npm run build:console` builds it (functions/console). */
export const CONSOLE_ASSETS_DIR = resolve(import.meta.dirname, '..', 'console', 'dist');

/** Where the server keeps its state unless BAKEHOUSE_DATA_DIR says otherwise. */
export const DEFAULT_DATA_DIR = '.data';

/** How often the running server looks for stuck jobs, and how long a job may wait first. */
const RECONCILE_EVERY_MS = 30_000;
const STUCK_AFTER_MS = 60_000;

export interface LocalServerOptions {
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  adminApiKey?: string;
  baseModels?: string;
  /** The base model of repos created without one; default the toy model, or Qwen/Qwen3-32B with `hubAccess`. */
  defaultBaseModel?: string;
  /** Whether the engine may download base models from the hub (`BAKEHOUSE_HUB_ACCESS=1`). */
  hubAccess?: boolean;
  /** Seconds a sampler waits for chat requests before it stops; default 600. */
  samplerIdleSeconds?: string;
  /** The most tokens a sampling request without max_tokens generates; default 4096. */
  samplerMaxTokens?: string;
  /** Requests that may wait for one base model's sampler before more are refused; default 256. */
  samplerMaxQueued?: string;
  /** Where Loops clients reach the training data plane (`BAKEHOUSE_DATA_PLANE_URL`), e.g. behind a proxy; default the origin requests arrive at. */
  dataPlaneUrl?: string;
  /** Comma-separated URI prefixes `from_dataset` generators may read (`BAKEHOUSE_DATASET_URI_PREFIXES`); default none. */
  datasetUriPrefixes?: string;
  /** Let webhooks reach private, link-local and metadata addresses (`BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1`); loopback is always allowed. */
  webhookAllowPrivate?: boolean;
  /** Webhook deliveries running at once (`BAKEHOUSE_WEBHOOK_CONCURRENCY`); default 8. */
  webhookConcurrency?: string;
  /** The engine's command line (`run <spec>` is appended); default the project's engine environment. */
  engineCommand?: string[];
  engineConcurrency?: number;
  /** Where each request is logged; none by default (the demo and tests keep their output clean). */
  accessLog?: AccessLogSink;
  serve: typeof nodeServe;
}

export interface LocalServer {
  url: string;
  adminApiKey: string;
  dataDir: string;
  runtime: EmbeddedRuntime;
  close(): Promise<void>;
}

/**
 * The embedded runtime (DESIGN.md §6): SQLite, blobs and engine state in the data dir, the
 * in-process queue feeding the dispatcher, local engine processes, and reconciliation at
 * start-up and periodically: after a stop or a crash, jobs waiting for an engine slot run, engines
 * that outlived the server are followed to their end, and the rest end failed, never stuck.
 */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });

  // Listen first: signed blob URLs need the real origin, which a free port only gives afterwards.
  let fetchApp: (request: Request) => Response | Promise<Response> = () => new Response('starting', { status: 503 });
  // Requests under way, so that closing waits for them before closing the store.
  const inFlight = new Set<Promise<unknown>>();
  const track = (request: Request) => {
    const answer = Promise.resolve(fetchApp(request));
    const settled = answer.catch(() => undefined).finally(() => inFlight.delete(settled));
    inFlight.add(settled);
    return answer;
  };
  const server = await new Promise<ReturnType<typeof nodeServe>>((ready) => {
    const started = options.serve({ fetch: track, port: options.port, hostname: '127.0.0.1' }, () => ready(started));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const signingKey = persistentSecret(dataDir, 'blob-signing-key', () => randomBytes(32).toString('hex'));
  const runtime = await composeEmbedded({
    dataDir,
    baseUrl: url,
    engineCommand: options.engineCommand ?? [DEFAULT_ENGINE_PYTHON, '-m', 'bakehouse_engine'],
    engineConcurrency: options.engineConcurrency ?? 1,
    signingKey,
    baseModels: options.baseModels,
    defaultBaseModel: options.defaultBaseModel,
    hubAccess: options.hubAccess,
    samplerIdleSeconds: options.samplerIdleSeconds,
    samplerMaxTokens: options.samplerMaxTokens,
    samplerMaxQueued: options.samplerMaxQueued,
    datasetUriPrefixes: options.datasetUriPrefixes,
    webhookAllowPrivate: options.webhookAllowPrivate,
    webhookConcurrency: options.webhookConcurrency,
  }).catch(async (error: unknown) => {
    // A runtime that cannot start (a damaged database) must not leave the port answering.
    await stopListening(server);
    throw error;
  });
  const { services, queue, deliveryQueue, compute, blobs } = runtime;
  const adminApiKey = options.adminApiKey ?? persistentSecret(dataDir, 'admin-api-key', () => `bh_admin_${randomBytes(24).toString('base64url')}`);
  await services.apiKeys.ensure(adminApiKey, ADMIN_USER, true);

  // Samplers are local engine processes: they reach this server on the address it listens on.
  fetchApp = createApp(services, {
    blobs: { blobs, signingKey },
    chat: { relayUrl: url },
    console: { assetsDir: CONSOLE_ASSETS_DIR },
    loops: { dataPlaneUrl: options.dataPlaneUrl },
    accessLog: options.accessLog,
  }).fetch;
  queue.consume(({ jobId }) => services.pipeline.dispatch(jobId));
  deliveryQueue.consume((message) => services.webhooks.handleDelivery(message));
  // Before reconciling: the jobs left waiting are then pending, not gone, and one submitted again
  // (its compute id lost in a crash) gets the compute job it already has.
  await compute.resume();
  await services.pipeline.reconcile({ queuedGraceMs: 0, submitGraceMs: 0 });
  // Webhook deliveries whose in-memory queue message a stop lost are due: they go out now.
  await services.webhooks.sweepDeliveries();
  await services.training.sweep();
  const timer = setInterval(() => {
    services.pipeline.reconcile({ queuedGraceMs: STUCK_AFTER_MS, submitGraceMs: STUCK_AFTER_MS }).catch((error: unknown) => {
      console.error(JSON.stringify({ level: 'error', msg: 'reconcile failed', error: String(error) }));
    });
    services.webhooks.sweepDeliveries().catch((error: unknown) => {
      console.error(JSON.stringify({ level: 'error', msg: 'webhook delivery sweep failed', error: String(error) }));
    });
    services.training.sweep().catch((error: unknown) => {
      console.error(JSON.stringify({ level: 'error', msg: 'training sweep failed', error: String(error) }));
    });
  }, RECONCILE_EVERY_MS);
  timer.unref();

  return {
    url,
    adminApiKey,
    dataDir,
    runtime,
    close: async () => {
      clearInterval(timer);
      // Samplers serve this server's chat routes and keep no state of their own: they stop with
      // it (their long polls would otherwise hold its connections open), and the next chat
      // request after a restart starts a fresh one. Trainers are left running: they hold a run's
      // weights and optimizer state, retry the relay for 120 s, and the next start serves them on.
      await services.pipeline.terminateActive('sampler', 'the local server stopped');
      await stopListening(server);
      await Promise.allSettled([...inFlight]);
      await runtime.close();
    },
  };
}

/** Stops accepting connections and drops the open ones (a chat long poll would hold its own). */
async function stopListening(server: ReturnType<typeof nodeServe>): Promise<void> {
  const closed = new Promise<void>((done) => server.close(() => done()));
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await closed;
}

/** A secret generated on first start and kept (readable by the owner only) for later starts. */
function persistentSecret(dataDir: string, name: string, generate: () => string): string {
  const file = join(dataDir, name);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const secret = generate();
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

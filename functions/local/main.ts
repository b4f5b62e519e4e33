/**
 * `npm start`: the whole API on localhost over the embedded adapters (DESIGN.md §6).
 * Environment: PORT (default 8080), BAKEHOUSE_DATA_DIR (default ./.data), BAKEHOUSE_API_KEY
 * (the admin key; otherwise one is generated on first start and kept in the data dir),
 * BAKEHOUSE_ENGINE_CONCURRENCY (engines at once, default 1), BAKEHOUSE_ENGINE_COMMAND (a JSON
 * array replacing the engine command line, e.g. to use another Python environment),
 * BAKEHOUSE_SAMPLER_IDLE_SECONDS (how long a chat sampler waits for requests, default 600),
 * BAKEHOUSE_SAMPLER_MAX_TOKENS (the most tokens a sampling request without max_tokens generates, default 4096),
 * BAKEHOUSE_SAMPLER_MAX_QUEUED (requests that may wait for one base model's sampler before more are refused, default 256),
 * BAKEHOUSE_DATA_PLANE_URL (where Loops clients reach run and sampler base URLs; default the origin requests arrive at),
 * BAKEHOUSE_DEFAULT_BASE_MODEL (the base model of repos created without one),
 * BAKEHOUSE_DATASET_URI_PREFIXES (comma-separated URI folders `from_dataset` generators may read),
 * BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1 (webhooks may reach private and link-local addresses),
 * BAKEHOUSE_WEBHOOK_CONCURRENCY (webhook deliveries at once, default 8).
 */
import { serve } from '@hono/node-server';
import { ConfigError } from '#functions/composition.ts';
import { formatAccessLine } from '#http/middleware/access-log.ts';
import { DamagedDatabaseError } from '#adapters/embedded/sqlite-store.ts';
import { damagedDatabaseAdvice } from './backup.ts';
import { DEFAULT_DATA_DIR, startLocalServer } from './server.ts';

const dataDir = process.env.BAKEHOUSE_DATA_DIR ?? DEFAULT_DATA_DIR;
const running = await startLocalServer({
  port: Number(process.env.PORT ?? 8080),
  dataDir,
  adminApiKey: process.env.BAKEHOUSE_API_KEY || undefined,
  baseModels: process.env.BAKEHOUSE_BASE_MODELS,
  defaultBaseModel: process.env.BAKEHOUSE_DEFAULT_BASE_MODEL || undefined,
  hubAccess: process.env.BAKEHOUSE_HUB_ACCESS === '1',
  samplerIdleSeconds: process.env.BAKEHOUSE_SAMPLER_IDLE_SECONDS || undefined,
  samplerMaxTokens: process.env.BAKEHOUSE_SAMPLER_MAX_TOKENS || undefined,
  samplerMaxQueued: process.env.BAKEHOUSE_SAMPLER_MAX_QUEUED || undefined,
  dataPlaneUrl: process.env.BAKEHOUSE_DATA_PLANE_URL || undefined,
  datasetUriPrefixes: process.env.BAKEHOUSE_DATASET_URI_PREFIXES,
  webhookAllowPrivate: process.env.BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE === '1',
  webhookConcurrency: process.env.BAKEHOUSE_WEBHOOK_CONCURRENCY || undefined,
  engineConcurrency: Number(process.env.BAKEHOUSE_ENGINE_CONCURRENCY ?? 1),
  engineCommand: process.env.BAKEHOUSE_ENGINE_COMMAND ? (JSON.parse(process.env.BAKEHOUSE_ENGINE_COMMAND) as string[]) : undefined,
  accessLog: (entry) => console.log(formatAccessLine(entry)),
  serve,
}).catch((error: unknown) => {
  // The operator's way out, instead of a stack trace; nothing was served.
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  if (!(error instanceof DamagedDatabaseError)) throw error;
  console.error(damagedDatabaseAdvice(error.file, error.reason, dataDir));
  process.exit(1);
});

console.log(`Bakehouse API listening on ${running.url}`);
console.log(`  admin API key: ${running.adminApiKey}`);
console.log(`  data dir:      ${running.dataDir}`);
console.log(`  docs:          ${running.url}/docs`);
console.log(`Try: BREAD_BASE_URL=${running.url} BREAD_API_KEY=${running.adminApiKey} …`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void running.close().then(() => process.exit(0));
  });
}

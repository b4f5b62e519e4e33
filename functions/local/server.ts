import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { serve as nodeServe } from '@hono/node-server';
import { ADMIN_USER } from '#core/api-keys.ts';
import { compose } from '#functions/composition.ts';
import { createApp } from '#http/app.ts';

export interface LocalServerOptions {
  /** 0 picks a free port. */
  port: number;
  dataDir: string;
  adminApiKey?: string;
  baseModels?: string;
  serve: typeof nodeServe;
}

export interface LocalServer {
  url: string;
  adminApiKey: string;
  dataDir: string;
  close(): Promise<void>;
}

/** Starts the embedded runtime: SQLite in the data dir, served on the loopback interface. */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const { services, store } = compose({ store: 'sqlite', sqlitePath: join(dataDir, 'bakehouse.db'), baseModels: options.baseModels });
  const adminApiKey = options.adminApiKey ?? generatedAdminKey(dataDir);
  await services.apiKeys.ensure(adminApiKey, ADMIN_USER, true);

  const app = createApp(services);
  const server = await new Promise<ReturnType<typeof nodeServe>>((ready) => {
    const started = options.serve({ fetch: app.fetch, port: options.port, hostname: '127.0.0.1' }, () => ready(started));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    adminApiKey,
    dataDir,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => void store.close().then(done));
      }),
  };
}

/** The admin key generated on first start, kept (readable by the owner only) for later starts. */
function generatedAdminKey(dataDir: string): string {
  const file = join(dataDir, 'admin-api-key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const key = `bh_admin_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

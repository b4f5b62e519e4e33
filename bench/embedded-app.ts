/**
 * The API app over an embedded runtime in a scratch data dir, with an admin key, for the benches
 * that call it in-process. `close` stops the runtime and removes the data dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_USER } from '#core/api-keys.ts';
import { composeEmbedded } from '#functions/composition.ts';
import { createApp } from '#http/app.ts';

export const BENCH_KEY = 'bench-admin-key';

export async function embeddedBenchApp() {
  const dir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-'));
  const runtime = await composeEmbedded({
    dataDir: dir,
    baseUrl: 'http://127.0.0.1:9',
    engineCommand: ['python3', '-m', 'bakehouse_engine'],
    engineConcurrency: 1,
    signingKey: 'bench-signing-key-0123456789',
    baseModels: 'bakehouse/toy-instruct',
  });
  await runtime.services.apiKeys.ensure(BENCH_KEY, ADMIN_USER, true);
  return {
    app: createApp(runtime.services),
    close: async () => {
      await runtime.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

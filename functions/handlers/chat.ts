import { fileURLToPath } from 'node:url';
import { streamHandle } from 'hono/aws-lambda';
import { createApp } from '#http/app.ts';
import { lambdaAccessLog } from './access-log.ts';
import { loopsOrigins } from './loops-origins.ts';
import { runtime } from './runtime.ts';

/**
 * The same app behind a streaming Function URL (lib/constructs/api.ts): chat replies reach the
 * client as they are generated, and a reply may wait up to the 15-minute limit for a cold sampler.
 */
export const handler = streamHandle(
  createApp(runtime.services, {
    console: { assetsDir: fileURLToPath(new URL('./console', import.meta.url)) },
    loops: loopsOrigins(runtime),
    accessLog: lambdaAccessLog(),
  }),
);

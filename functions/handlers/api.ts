import { fileURLToPath } from 'node:url';
import { handle } from 'hono/aws-lambda';
import { createApp } from '#http/app.ts';
import { lambdaAccessLog } from './access-log.ts';
import { ensureAdminKeyFromSecret } from './admin-key.ts';
import { loopsOrigins } from './loops-origins.ts';
import { runtime } from './runtime.ts';

// Once per cold start, before the first request is served.
if (process.env.ADMIN_KEY_SECRET_ARN) await ensureAdminKeyFromSecret(runtime.services.apiKeys, process.env.ADMIN_KEY_SECRET_ARN);

// The console's built files travel beside the bundle (lib/constructs/api.ts copies them there).
const consoleAssets = fileURLToPath(new URL('./console', import.meta.url));

export const handler = handle(createApp(runtime.services, { console: { assetsDir: consoleAssets }, loops: loopsOrigins(runtime), accessLog: lambdaAccessLog() }));

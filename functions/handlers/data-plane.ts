import { serve } from '@hono/node-server';
import { createApp } from '#http/app.ts';
import { lambdaAccessLog } from './access-log.ts';
import { loopsOrigins } from './loops-origins.ts';
import { runtime } from './runtime.ts';

/**
 * The training data plane's container (lib/constructs/data-plane.ts): the API functions' app and
 * configuration, served by Node on PORT behind a load balancer, where request bodies may exceed
 * Lambda's 6 MB. Access lines are the functions' Powertools JSON, without a Lambda invocation.
 */
const server = serve({
  fetch: createApp(runtime.services, { loops: loopsOrigins(runtime), accessLog: lambdaAccessLog() }).fetch,
  port: Number(process.env.PORT ?? 8080),
  // Idle connections outlive the load balancer's idle timeout (60 s), so that it never sends a
  // request on one the server is closing: Node's default of 5 s would answer some with 502.
  serverOptions: { keepAliveTimeout: 65_000, headersTimeout: 66_000 },
});

// ECS deregisters a stopping task and lets the load balancer drain it before sending SIGTERM.
process.once('SIGTERM', () => server.close(() => process.exit(0)));

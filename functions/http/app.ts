import { swaggerUI } from '@hono/swagger-ui';
import type { Services } from '#core/services.ts';
import { handleError } from './errors.ts';
import { methodNotAllowed } from './method-not-allowed.ts';
import { accessLog, requestId, type AccessLogSink } from './middleware/access-log.ts';
import { authenticate } from './middleware/auth.ts';
import { readBody } from './middleware/body.ts';
import { idempotency } from './middleware/idempotency.ts';
import { createRouter, documentSharedErrors } from './openapi.ts';
import { adminRoutes } from './routes/admin.ts';
import { blobRoutes, type BlobRouteOptions } from './routes/blobs.ts';
import { chatRoutes, type ChatRouteOptions } from './routes/chat.ts';
import { consoleRoutes, type ConsoleRouteOptions } from './routes/console.ts';
import { datasetRoutes } from './routes/datasets.ts';
import { API_VERSION, healthRoutes } from './routes/health.ts';
import { bakeRoutes, targetRoutes } from './routes/definitions.ts';
import { documentEventPayloads } from './routes/event-payloads.ts';
import { jobRoutes } from './routes/jobs.ts';
import { isLoopsDataPlane, LOOPS_DATA_PLANE_MAX_BODY_BYTES, loopsRoutes, type LoopsRouteOptions } from './routes/loops/index.ts';
import { isTinkerPath, tinkerRoutes, type TinkerRouteOptions } from './routes/tinker/index.ts';
import { MCP_PATH, mcpRoutes } from './routes/mcp.ts';
import { pipelineRoutes } from './routes/pipelines.ts';
import { promptRoutes } from './routes/prompts.ts';
import { recipeRoutes } from './routes/recipes.ts';
import { RELAY_PATH_PREFIX, relayRoutes } from './routes/relay.ts';
import { isTrainerResult, trainerRelayRoutes } from './routes/trainer-relay.ts';
import { repoRoutes } from './routes/repos.ts';
import { HOOK_PATH_PREFIX, triggerRoutes } from './routes/triggers.ts';
import { webhookRoutes } from './routes/webhooks.ts';

export interface AppOptions {
  /** Largest request body accepted, in bytes. */
  maxBodyBytes?: number;
  /** Serve signed blob URLs (the embedded runtime's stand-in for S3 presigned URLs). */
  blobs?: BlobRouteOptions;
  chat?: ChatRouteOptions;
  /** Serve the web console's built files at /console, and send browsers at `/` there. */
  console?: ConsoleRouteOptions;
  /** Where the runtime writes one line per request; none when unset (tests). */
  accessLog?: AccessLogSink;
  /** The Loops API: where its data plane is reached, and its timings. */
  loops?: LoopsRouteOptions;
  /** The Tinker protocol at /tinker: its timings. */
  tinker?: TinkerRouteOptions;
}

/** Routes whose credential is not an API key: health, signed blob URLs, the samplers' relay, and signed trigger hooks. */
const withoutApiKey = (path: string) =>
  path === '/v1/health' || path.startsWith('/v1/blobs/') || path.startsWith(RELAY_PATH_PREFIX) || path.startsWith(HOOK_PATH_PREFIX);

/** 8 MiB: room for batch creates and 1 MB templates, under Lambda's 6 MB payload after encoding. */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** The whole HTTP API over the given services; runtime-neutral (Node server or Lambda). */
export function createApp(services: Services, options: AppOptions = {}) {
  const app = createRouter();
  app.onError(handleError);
  app.notFound(methodNotAllowed(app));

  app.use('*', requestId());
  if (options.accessLog) app.use('*', accessLog(options.accessLog));
  const bodyLimit = readBody(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  // The Loops data plane takes the SDK's forward_backward bodies, which reach 24 MiB.
  const dataPlaneBodyLimit = readBody(LOOPS_DATA_PLANE_MAX_BODY_BYTES);
  // A trainer's answers to those bodies (a forward's log-probs) come back about as large.
  // Tinker's forward_backward requests are as large (5 MB of protobuf per chunk, more as JSON).
  const takesTrainingBodies = (path: string) => isLoopsDataPlane(path) || isTrainerResult(path) || isTinkerPath(path);
  app.use('*', (c, next) => (takesTrainingBodies(c.req.path) ? dataPlaneBodyLimit : bodyLimit)(c, next));
  healthRoutes(app);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Bakehouse API', version: API_VERSION, description: 'Bread-compatible API for baking prompts into model weights.' },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
  app.get('/docs', swaggerUI({ url: '/openapi.json' }));

  const auth = authenticate(services.apiKeys);
  app.use('/v1/*', async (c, next) => (withoutApiKey(c.req.path) ? next() : auth(c, next)));
  app.use(MCP_PATH, auth);
  const replay = idempotency(services.idempotency);
  app.use('/v1/*', async (c, next) => (withoutApiKey(c.req.path) ? next() : replay(c, next)));

  if (options.blobs) blobRoutes(app, options.blobs);
  if (options.console) consoleRoutes(app, options.console);

  repoRoutes(app, services);
  promptRoutes(app, services);
  targetRoutes(app, services);
  bakeRoutes(app, services);
  recipeRoutes(app, services);
  datasetRoutes(app, services);
  jobRoutes(app, services);
  pipelineRoutes(app, services);
  adminRoutes(app, services);
  chatRoutes(app, services, options.chat ?? {});
  // Trainer jobs reach the same relay address as samplers.
  loopsRoutes(app, services, { relayUrl: options.chat?.relayUrl, ...options.loops });
  tinkerRoutes(app, services, { relayUrl: options.chat?.relayUrl, ...options.tinker });
  relayRoutes(app, services);
  trainerRelayRoutes(app, services);
  triggerRoutes(app, services);
  webhookRoutes(app, services);
  mcpRoutes(app, services, options.chat ?? {});
  documentEventPayloads(app);
  documentSharedErrors(app);
  return app;
}

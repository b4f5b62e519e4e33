/**
 * The Loops API (loops-api.md Part 1, loops-data-plane.md): a thin adapter over the training
 * service. The control plane lives under `/v1`; the data plane at `{origin}/loops/trainers/{run_id}`
 * and `{origin}/loops/samplers/{sampler_id}`, outside the OpenAPI document: its contract is the
 * `baseten-loops` SDK's own (loops-data-plane.md), checked by the zod schemas in schemas/loops.ts.
 */
import { authenticate } from '../../middleware/auth.ts';
import type { Services } from '#core/services.ts';
import type { App } from '../../openapi.ts';
import { controlPlaneRoutes } from './control-plane.ts';
import { DATA_PLANE_PREFIX } from './errors.ts';
import { legacyRoutes } from './legacy.ts';
import type { LoopsRouteOptions } from './options.ts';
import { runMetricsRoutes } from './run-metrics.ts';
import { samplerPlaneRoutes } from './sampler-plane.ts';
import { trainerPlaneRoutes } from './trainer-plane.ts';

export { isLoopsDataPlane } from './errors.ts';
export type { LoopsRouteOptions } from './options.ts';

/**
 * The SDK splits a forward_backward only above 24 MiB of JSON (loops-data-plane.md §8.6); the
 * margin covers the op's other fields and a client that measures a little differently.
 */
export const LOOPS_DATA_PLANE_MAX_BODY_BYTES = 26 * 1024 * 1024;

export function loopsRoutes(app: App, services: Services, options: LoopsRouteOptions = {}): void {
  // The control plane is under /v1, which the app authenticates; the data plane needs the same keys.
  app.use(`${DATA_PLANE_PREFIX}*`, authenticate(services.apiKeys));
  controlPlaneRoutes(app, services, options);
  legacyRoutes(app, services, options);
  runMetricsRoutes(app, services);
  trainerPlaneRoutes(app, services, options);
  samplerPlaneRoutes(app, services, options);
}

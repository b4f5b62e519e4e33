/**
 * The Tinker protocol (loops-api.md Part 2) at `{origin}/tinker/api/v1/*`, for the stock `tinker`
 * SDK (0.16.1, 0.25, 0.38): a thin adapter over the training service, beside the Loops one. Its
 * contract is the SDK's own, checked by the zod schemas in schemas/tinker.ts and the protobuf
 * codec in ./proto, so it stays outside the OpenAPI document as the Loops data plane does.
 */
import type { Services } from '#core/services.ts';
import { authenticate } from '../../middleware/auth.ts';
import type { App } from '../../openapi.ts';
import { futureRoutes } from './future-routes.ts';
import { TINKER_PREFIX, type TinkerRouteOptions } from './requests.ts';
import { restRoutes } from './rest-routes.ts';
import { samplingRoutes } from './sampling-routes.ts';
import { sessionRoutes } from './session-routes.ts';
import { trainingRoutes } from './training-routes.ts';

export { isTinkerPath, type TinkerRouteOptions } from './requests.ts';

/** The SDK refuses keys that do not start with `tml-`, so users send `tml-<Bakehouse key>`; the prefix is not part of the key. */
export const TINKER_KEY_PREFIX = 'tml-';

export function tinkerRoutes(app: App, services: Services, options: TinkerRouteOptions = {}): void {
  app.use(`${TINKER_PREFIX}*`, authenticate(services.apiKeys, { stripKeyPrefix: TINKER_KEY_PREFIX }));
  sessionRoutes(app, services);
  trainingRoutes(app, services, options);
  samplingRoutes(app, services, options);
  futureRoutes(app, services, options);
  restRoutes(app, services);
}

import type { Context } from 'hono';
import { LoopsError } from '#schemas/loops.ts';

export interface LoopsRouteOptions {
  /**
   * The data plane's public origin (`BAKEHOUSE_DATA_PLANE_URL`), where `run.base_url` and
   * `sampler.base_url` point. On AWS the data plane is its own load balancer; unset, the origin
   * each control-plane request arrived at.
   */
  dataPlaneUrl?: string;
  /** Where trainer jobs reach this API's relay routes; unset, the origin each run's creation arrived at. */
  relayUrl?: string;
  /** How long an operation poll waits for a result before answering 408; default 20 s (loops-data-plane.md §6.3). */
  pollHoldMs?: number;
}

export const DEFAULT_POLL_HOLD_MS = 20_000;
/** A deployment is one tenant, so it has one team (`GET /v1/teams`); the SDK finds it by name. */
export const TEAM = { id: 'default', name: 'default' };

export function dataPlaneOrigin(c: Context, options: LoopsRouteOptions): string {
  return (options.dataPlaneUrl ?? new URL(c.req.url).origin).replace(/\/+$/, '');
}

export const relayUrlOf = (c: Context, options: LoopsRouteOptions) => options.relayUrl ?? new URL(c.req.url).origin;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the sentence says what to change',
  401: 'Missing or unknown API key',
  404: 'Not found, or not the caller’s',
  409: 'Conflicts with the resource’s state',
  413: 'Body too large',
  415: 'Body is not JSON: send Content-Type: application/json',
};

/** Error answers in the Loops shape, 401 always included; routes that take a body list 413 and 415 (the shared middleware's, in this shape). */
export function loopsErrors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]) {
  return Object.fromEntries(
    [401, ...statuses].map((status) => [status, { description: ERROR_DESCRIPTIONS[status]!, content: { 'application/json': { schema: LoopsError } } }]),
  );
}

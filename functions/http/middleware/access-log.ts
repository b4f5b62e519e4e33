import type { Context, MiddlewareHandler } from 'hono';
import { requestId as honoRequestId } from 'hono/request-id';
import { matchedRoutes } from 'hono/route';
import type { AppEnv } from '../env.ts';

/** One line per request. Bodies, headers and query strings stay out: they carry keys and URL signatures. */
export interface AccessLogEntry {
  method: string;
  /** The pattern of the route the request matched (`/v1/repo/:repo_name`); null when none did (a 404 or 405). */
  route: string | null;
  /** The path without its query string. */
  path: string;
  status: number;
  duration_ms: number;
  /** Whom the request acted for; null before (or without) authentication. */
  user_id: string | null;
  request_id: string;
}

/**
 * Where the runtime writes the lines: Powertools JSON on Lambda (functions/handlers), the console
 * on the embedded runtime. It gets the request's context for what only the runtime knows
 * (the Lambda invocation).
 */
export type AccessLogSink = (entry: AccessLogEntry, c: Context) => void;

/**
 * `x-request-id`: the caller's, when it is a plausible id (word characters, `-` and `=`, at most
 * 128), else a new UUID; echoed on the response so a user can quote it. Hono's middleware does
 * exactly this; the tighter length keeps a hostile header from bloating every log line.
 */
export const requestId = (): MiddlewareHandler<AppEnv> => honoRequestId({ limitLength: 128 });

/** Writes one entry per request once it is answered, errors and unmatched paths included. */
export function accessLog(sink: AccessLogSink): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    sink(
      {
        method: c.req.method,
        route: routePattern(c),
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 10) / 10,
        user_id: c.get('actor')?.userId ?? null,
        request_id: c.get('requestId'),
      },
      c,
    );
  };
}

/**
 * The first route (not middleware) the path matched, which is the one that answers it, even when a
 * middleware answered first (a 401 names the route that was refused).
 */
function routePattern(c: Context): string | null {
  return matchedRoutes(c).find((route) => route.method !== 'ALL')?.path ?? null;
}

/** The embedded runtime's console line: `GET /v1/repo/demo 200 3.1ms user=alice req=…`. */
export function formatAccessLine(entry: AccessLogEntry): string {
  return `${entry.method} ${entry.path} ${entry.status} ${entry.duration_ms}ms user=${entry.user_id ?? '-'} req=${entry.request_id}`;
}

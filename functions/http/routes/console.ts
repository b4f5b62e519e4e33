import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Context, Hono } from 'hono';
import { compress } from 'hono/compress';
import type { AppEnv } from '../env.ts';
import { errorResponse, notFound } from '../errors.ts';

export const CONSOLE_PATH = '/console';

export interface ConsoleRouteOptions {
  /** The console's built files (`npm run build:console` writes functions/console/dist). */
  assetsDir: string;
}

/** Vite names every built asset after its content hash: a changed file is a new URL. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** The page names the current assets, so browsers revalidate it on every load. */
const REVALIDATE = 'no-cache';
/**
 * The console calls only this origin's API (no private endpoints, no CDN); downloads are
 * navigations, which `connect-src` does not govern, so S3 presigned URLs still open.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Browsers ask for HTML first; API clients get the JSON 404 they always got. */
const wantsHtml = (c: Context) => (c.req.header('accept') ?? '').includes('text/html');

/**
 * The web console's built files at /console (functions/console): a static page that calls the
 * public API with the user's key, so it needs no routes of its own. `/` sends browsers there.
 */
export function consoleRoutes(app: Hono<AppEnv>, options: ConsoleRouteOptions): void {
  const built = () => existsSync(join(options.assetsDir, 'index.html'));

  app.get('/', (c) => (wantsHtml(c) ? c.redirect(`${CONSOLE_PATH}/`, 302) : notFound(c)));
  app.get(CONSOLE_PATH, (c) => c.redirect(`${CONSOLE_PATH}/`, 301));
  app.use(`${CONSOLE_PATH}/*`, compress());
  app.get(
    `${CONSOLE_PATH}/*`,
    async (c, next) => {
      if (!built()) {
        return errorResponse(c, 503, {
          message: 'The web console is not built on this server: run `npm run build:console`, then restart the server.',
          code: 'UNAVAILABLE',
        });
      }
      await next();
      if (!c.res.ok) return;
      const page = (c.res.headers.get('content-type') ?? '').startsWith('text/html');
      c.res.headers.set('cache-control', page ? REVALIDATE : IMMUTABLE);
      c.res.headers.set('x-content-type-options', 'nosniff');
      if (page) c.res.headers.set('content-security-policy', CONTENT_SECURITY_POLICY);
    },
    serveStatic({ root: options.assetsDir, rewriteRequestPath: (path) => path.slice(CONSOLE_PATH.length) || '/' }),
    // A path with no built file behind it, e.g. an asset of an older build.
    (c) => notFound(c),
  );
}

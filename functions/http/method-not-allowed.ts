import type { Context, Hono, NotFoundHandler } from 'hono';
import { TrieRouter } from 'hono/router/trie-router';
import { errorResponse, notFound } from './errors.ts';

/**
 * The app's not-found handler: a path that some route serves under another method answers 405
 * with an `Allow` header, anything else 404. The methods come from the app's own registered
 * routes, matched by Hono's path rules, so a new route is covered without listing it anywhere.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function methodNotAllowed(app: Hono<any>): NotFoundHandler {
  let router: TrieRouter<string> | undefined;
  const allowedOn = (path: string): string[] => {
    // Built on first use, once every route is registered.
    if (!router) {
      router = new TrieRouter<string>();
      for (const route of app.routes) if (route.method !== 'ALL') router.add('ALL', route.path, route.method);
    }
    const methods = new Set(router.match('ALL', path)[0].map(([method]) => method));
    if (methods.has('GET')) methods.add('HEAD'); // Hono answers HEAD with the GET route
    return [...methods].sort();
  };

  return (c: Context) => {
    const allowed = allowedOn(c.req.path);
    if (allowed.length === 0) return notFound(c);
    c.header('allow', allowed.join(', '));
    return errorResponse(c, 405, {
      message: `Method ${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(', ')}`,
      code: 'METHOD_NOT_ALLOWED',
    });
  };
}

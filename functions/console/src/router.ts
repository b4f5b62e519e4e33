import { useEffect, useState } from 'preact/hooks';

/**
 * Pages are addressed by the URL fragment (`#/repos/demo/bakes/v1`), so every page has a link
 * that survives a reload while the server serves one file for the whole console.
 */
export type Route =
  | { page: 'repos' }
  | { page: 'repo'; repo: string }
  | { page: 'target'; repo: string; target: string }
  | { page: 'bake'; repo: string; bake: string }
  | { page: 'chat'; model: string | null }
  | { page: 'runs' }
  | { page: 'missing'; path: string };

export function parseRoute(hash: string): Route {
  const [path = '', search = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search);
  const [first, repo, kind, name] = parts;
  if (parts.length === 0) return { page: 'repos' };
  if (first === 'chat' && parts.length === 1) return { page: 'chat', model: query.get('model') };
  if (first === 'runs' && parts.length === 1) return { page: 'runs' };
  if (first === 'repos' && repo) {
    if (parts.length === 2) return { page: 'repo', repo };
    if (kind === 'targets' && name && parts.length === 4) return { page: 'target', repo, target: name };
    if (kind === 'bakes' && name && parts.length === 4) return { page: 'bake', repo, bake: name };
  }
  return { page: 'missing', path };
}

/** The fragment of a page, its names encoded: `href(['repos', 'my repo'])` → `#/repos/my%20repo`. */
export function href(parts: string[], query?: Record<string, string>): string {
  const search = query ? `?${new URLSearchParams(query).toString()}` : '';
  return `#/${parts.map(encodeURIComponent).join('/')}${search}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

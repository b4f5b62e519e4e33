import { useEffect, useRef } from 'preact/hooks';
import { apiPath } from './api.ts';
import { useLoad } from './load.ts';
import { href, useRoute, type Route } from './router.ts';
import { BakePage } from './pages/BakePage.tsx';
import { ChatPage } from './pages/ChatPage.tsx';
import { RepoList } from './pages/RepoList.tsx';
import { RepoPage } from './pages/RepoPage.tsx';
import { RunsPage } from './pages/RunsPage.tsx';
import { TargetPage } from './pages/TargetPage.tsx';
import type { LoopsRun } from './types.ts';

function page(route: Route) {
  switch (route.page) {
    case 'repos':
      return <RepoList />;
    case 'repo':
      return <RepoPage repo={route.repo} />;
    case 'target':
      return <TargetPage repo={route.repo} target={route.target} />;
    case 'bake':
      return <BakePage repo={route.repo} bake={route.bake} />;
    case 'chat':
      return <ChatPage model={route.model} />;
    case 'runs':
      return <RunsPage />;
    case 'missing':
      return (
        <>
          <h1>Page not found</h1>
          <p>
            There is no console page at <code>#/{route.path}</code>. <a href={href([])}>Go to your repos</a>.
          </p>
        </>
      );
  }
}

/** Header, navigation and the current page; focus moves to the page's heading on navigation. */
export function Layout({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  // The training-runs view exists only where the server has the Loops API (it 404s otherwise).
  const loops = useLoad((api, signal) => api.get<{ runs: LoopsRun[] }>(apiPath('/v1/loops/runs'), { signal }), []);

  useEffect(() => {
    main.current?.querySelector<HTMLElement>('h1')?.focus();
  }, [route]);

  return (
    <>
      <a class="skip" href="#main" onClick={(event) => (event.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href([])}>
          Bakehouse
        </a>
        <nav aria-label="Main">
          <a href={href([])} aria-current={['repos', 'repo', 'target', 'bake'].includes(route.page) ? 'page' : undefined}>
            Repos
          </a>
          <a href={href(['chat'])} aria-current={route.page === 'chat' ? 'page' : undefined}>
            Chat
          </a>
          {loops.data ? (
            <a href={href(['runs'])} aria-current={route.page === 'runs' ? 'page' : undefined}>
              Training runs
            </a>
          ) : null}
        </nav>
        <button type="button" class="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {page(route)}
      </main>
    </>
  );
}

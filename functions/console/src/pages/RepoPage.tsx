import { useState } from 'preact/hooks';
import { apiPath } from '../api.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { LineageGraph } from '../components/LineageGraph.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { useApi } from '../context.ts';
import { messageText } from '../format.ts';
import { useLoad } from '../load.ts';
import { href } from '../router.ts';
import type { Prompt, RepoSummary, RepoTree } from '../types.ts';

/** While any bake runs, the tree is asked for again this often. */
const TREE_POLL_MS = 3_000;

export function RepoPage({ repo }: { repo: string }) {
  const base = apiPath('/v1/repo', repo);
  const lists = useLoad(
    async (api, signal) => {
      const [summary, prompts, targets, bakes] = await Promise.all([
        api.get<RepoSummary>(base, { signal }),
        api.get<{ prompts: string[] }>(`${base}/prompts`, { signal }),
        api.get<{ targets: string[] }>(`${base}/targets`, { signal }),
        api.get<{ bakes: string[] }>(`${base}/bakes`, { signal }),
      ]);
      return { summary, prompts: prompts.prompts, targets: targets.targets, bakes: bakes.bakes };
    },
    [repo],
  );
  const tree = useLoad(
    (api, signal) => api.get<RepoTree>(`${base}/tree`, { signal }),
    [repo],
    (data) => (Object.values(data.bakes).some((node) => node.status === 'running') ? TREE_POLL_MS : null),
  );

  return (
    <>
      <p class="crumbs">
        <a href={href([])}>Repos</a> /
      </p>
      <PageTitle title={repo} />
      <ErrorNote error={lists.error} />
      {lists.data ? (
        <p>
          Base model <code>{lists.data.summary.base_model}</code>
        </p>
      ) : lists.loading ? (
        <p aria-live="polite">Loading…</p>
      ) : null}

      <section aria-labelledby="lineage-heading">
        <h2 id="lineage-heading">Lineage</h2>
        <ErrorNote error={tree.error} />
        {tree.data ? (
          Object.keys(tree.data.bakes).length ? <LineageGraph repo={repo} tree={tree.data} /> : <p>No bakes yet.</p>
        ) : null}
      </section>

      {lists.data ? (
        <div class="columns">
          <section aria-labelledby="bakes-heading">
            <h2 id="bakes-heading">Bakes</h2>
            <NameList names={lists.data.bakes} empty="No bakes." link={(name) => href(['repos', repo, 'bakes', name])} />
          </section>
          <section aria-labelledby="targets-heading">
            <h2 id="targets-heading">Targets</h2>
            <NameList names={lists.data.targets} empty="No targets." link={(name) => href(['repos', repo, 'targets', name])} />
          </section>
          <section aria-labelledby="prompts-heading">
            <h2 id="prompts-heading">Prompts</h2>
            {lists.data.prompts.length ? (
              <ul class="names">
                {lists.data.prompts.map((name) => (
                  <li key={name}>
                    <PromptItem repo={repo} name={name} />
                  </li>
                ))}
              </ul>
            ) : (
              <p>No prompts.</p>
            )}
          </section>
        </div>
      ) : null}
    </>
  );
}

function NameList({ names, empty, link }: { names: string[]; empty: string; link: (name: string) => string }) {
  if (!names.length) return <p>{empty}</p>;
  return (
    <ul class="names">
      {names.map((name) => (
        <li key={name}>
          <a href={link(name)}>{name}</a>
        </li>
      ))}
    </ul>
  );
}

/** A prompt's messages, fetched when the reader opens it. */
function PromptItem({ repo, name }: { repo: string; name: string }) {
  const api = useApi();
  const [prompt, setPrompt] = useState<Prompt | null>(null);
  const [error, setError] = useState<string | null>(null);
  const toggle = (event: Event) => {
    if (!(event.currentTarget as HTMLDetailsElement).open || prompt) return;
    api
      .get<Prompt>(apiPath('/v1/repo', repo, 'prompts', name))
      .then(setPrompt, (failure: Error) => setError(failure.message));
  };
  return (
    <details onToggle={toggle}>
      <summary>{name}</summary>
      <ErrorNote error={error} />
      {prompt ? (
        prompt.messages.length ? (
          <ol class="messages">
            {prompt.messages.map((message, index) => (
              <li key={index}>
                <span class="role">{message.role}</span> {messageText(message.content)}
              </li>
            ))}
          </ol>
        ) : (
          <p class="muted">No messages (an always-on student prompt).</p>
        )
      ) : error ? null : (
        <p class="muted">Loading…</p>
      )}
    </details>
  );
}

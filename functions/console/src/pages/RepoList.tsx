import { apiPath } from '../api.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { useLoad } from '../load.ts';
import { href } from '../router.ts';
import type { RepoSummary } from '../types.ts';

export function RepoList() {
  const repos = useLoad((api, signal) => api.get<{ repos: RepoSummary[] }>(apiPath('/v1/repo'), { query: { include_metadata: true }, signal }), []);
  return (
    <>
      <PageTitle title="Repos" />
      <ErrorNote error={repos.error} />
      {repos.data === undefined ? (
        repos.loading ? <p aria-live="polite">Loading repos…</p> : null
      ) : repos.data.repos.length === 0 ? (
        <p>
          No repos yet. Create one with <code>POST /v1/repo</code> (see <a href="/docs">the API reference</a>).
        </p>
      ) : (
        <div class="table-wrap">
          <table class="repos">
            <caption class="visually-hidden">Your repos and their base models</caption>
            <thead>
              <tr>
                <th scope="col">Repo</th>
                <th scope="col">Base model</th>
              </tr>
            </thead>
            <tbody>
              {repos.data.repos.map((repo) => (
                <tr key={repo.repo_name}>
                  <td>
                    <a href={href(['repos', repo.repo_name])}>{repo.repo_name}</a>
                  </td>
                  <td>
                    <code>{repo.base_model}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

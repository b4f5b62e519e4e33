import { useState } from 'preact/hooks';
import { apiPath, ApiError } from '../api.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { useLoad } from '../load.ts';
import type { LoopsCheckpoint, LoopsRun } from '../types.ts';

/** Client-driven training runs (the Loops API) and the checkpoints each has saved. */
export function RunsPage() {
  const runs = useLoad(
    (api, signal) =>
      api.get<{ runs: LoopsRun[] }>(apiPath('/v1/loops/runs'), { signal }).catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 404) return null; // this server has no Loops API
        throw error;
      }),
    [],
  );
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <PageTitle title="Training runs" />
      <ErrorNote error={runs.error} />
      {runs.data === null ? <p>This server does not offer training runs.</p> : null}
      {runs.data?.runs.length === 0 ? <p>No training runs yet.</p> : null}
      {runs.data?.runs.length ? (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Your training runs</caption>
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Base model</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Checkpoints</th>
              </tr>
            </thead>
            <tbody>
              {runs.data.runs.map((run) => (
                <tr key={run.id}>
                  <td>
                    {run.name} <code class="muted">{run.id}</code>
                  </td>
                  <td>
                    <code>{run.base_model}</code>
                  </td>
                  <td>{run.status.name.toLowerCase()}</td>
                  <td>{new Date(run.created_at).toLocaleString()}</td>
                  <td>
                    <button type="button" class="secondary" aria-expanded={open === run.id} onClick={() => setOpen(open === run.id ? null : run.id)}>
                      {open === run.id ? 'Hide' : 'Show'} checkpoints of {run.name}
                    </button>
                    {open === run.id ? <RunCheckpoints run={run.id} /> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

function RunCheckpoints({ run }: { run: string }) {
  const checkpoints = useLoad(
    (api, signal) => api.get<{ checkpoints: LoopsCheckpoint[] }>(apiPath('/v1/loops/checkpoints'), { query: { run_id: run }, signal }),
    [run],
  );
  if (checkpoints.error) return <ErrorNote error={checkpoints.error} />;
  if (!checkpoints.data) return <p class="muted">Loading…</p>;
  if (!checkpoints.data.checkpoints.length) return <p class="muted">No checkpoints saved yet.</p>;
  return (
    <ul class="names">
      {checkpoints.data.checkpoints.map((checkpoint) => (
        <li key={checkpoint.id}>
          <code>{checkpoint.checkpoint_id}</code> <span class="muted">({checkpoint.target}, {(checkpoint.size_bytes / 1e6).toFixed(1)} MB)</span>
        </li>
      ))}
    </ul>
  );
}

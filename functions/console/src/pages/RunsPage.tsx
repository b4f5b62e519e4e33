import { useState } from 'preact/hooks';
import { apiPath, ApiError, type Api } from '../api.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { LossChart } from '../components/LossChart.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { JOB_POLL_MS, useLoad } from '../load.ts';
import type { CheckpointFile, LoopsCheckpoint, LoopsRun, MetricsRow, RunStepMetric } from '../types.ts';

/** Client-driven training runs (the Loops API): each one's loss per step and the checkpoints it saved. */
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
  const shown = runs.data?.runs.find((run) => run.id === open);
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
                <th scope="col">Loss and checkpoints</th>
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
                    <button type="button" class="secondary" aria-expanded={open === run.id} aria-controls="run-details" onClick={() => setOpen(open === run.id ? null : run.id)}>
                      {open === run.id ? 'Hide' : 'Show'} {run.name || run.id}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {shown ? <RunDetails run={shown} /> : null}
    </>
  );
}

/** Every step of the run: the metrics route pages by 1000, so a long run takes a few requests. */
async function allSteps(api: Api, run: string, signal: AbortSignal): Promise<RunStepMetric[]> {
  const rows: RunStepMetric[] = [];
  let token: string | null = null;
  do {
    const page: { metrics: RunStepMetric[]; next_page_token: string | null } = await api.get(apiPath(`/v1/loops/runs/${encodeURIComponent(run)}/metrics`), {
      query: { page_token: token },
      signal,
    });
    rows.push(...page.metrics);
    token = page.next_page_token;
  } while (token);
  return rows;
}

/** The chart's rows: steps whose forward_backward calls counted no token have no loss to draw. */
function chartRows(steps: RunStepMetric[]): MetricsRow[] {
  return steps.flatMap((row) => (row.loss === null ? [] : [{ iter: row.step, loss: row.loss, lr: row.learning_rate }]));
}

/** A run's loss per step and its checkpoints, asked for again while the run may still train. */
function RunDetails({ run }: { run: LoopsRun }) {
  const active = run.status.name === 'ACTIVE';
  const whileActive = () => (active ? JOB_POLL_MS : null);
  const steps = useLoad((api, signal) => allSteps(api, run.id, signal), [run.id], whileActive);
  const checkpoints = useLoad(
    (api, signal) => api.get<{ checkpoints: LoopsCheckpoint[] }>(apiPath('/v1/loops/checkpoints'), { query: { run_id: run.id }, signal }),
    [run.id],
    whileActive,
  );
  const name = run.name || run.id;
  return (
    <section id="run-details" aria-labelledby="run-details-heading">
      <h2 id="run-details-heading">Run {name}</h2>
      <h3>Loss per step</h3>
      <ErrorNote error={steps.error} />
      {steps.data ? <LossChart title={`Loss of ${name}`} unit="step" rows={chartRows(steps.data)} /> : <p class="muted">Loading…</p>}
      <h3>Checkpoints</h3>
      <ErrorNote error={checkpoints.error} />
      {!checkpoints.data ? <p class="muted">Loading…</p> : null}
      {checkpoints.data?.checkpoints.length === 0 ? <p>No checkpoints saved yet.</p> : null}
      {checkpoints.data?.checkpoints.length ? (
        <ul class="checkpoints">
          {checkpoints.data.checkpoints.map((checkpoint) => (
            <li key={checkpoint.id}>
              <code>{checkpoint.checkpoint_id}</code>{' '}
              <span class="muted">
                ({checkpoint.target}, {(checkpoint.size_bytes / 1e6).toFixed(1)} MB)
              </span>
              <CheckpointFiles checkpoint={checkpoint} />
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

/** Download links for a checkpoint's files: presigned URLs from the files route, which expire, so they are asked for when shown. */
function CheckpointFiles({ checkpoint }: { checkpoint: LoopsCheckpoint }) {
  const files = useLoad(
    (api, signal) => api.get<{ presigned_urls: CheckpointFile[] }>(apiPath(`/v1/loops/checkpoints/${encodeURIComponent(checkpoint.id)}/files`), { signal }),
    [checkpoint.id],
  );
  if (files.error) return <ErrorNote error={files.error} />;
  if (!files.data) return null;
  return (
    <ul class="names">
      {files.data.presigned_urls.map((file) => (
        <li key={file.relative_file_name}>
          <a href={file.url} download={file.relative_file_name} aria-label={`Download ${file.relative_file_name} of ${checkpoint.checkpoint_id}`}>
            {file.relative_file_name}
          </a>{' '}
          <span class="muted">({(file.size_bytes / 1e3).toFixed(1)} kB)</span>
        </li>
      ))}
    </ul>
  );
}

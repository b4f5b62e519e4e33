import { useEffect } from 'preact/hooks';
import { apiPath, ApiError } from '../api.ts';
import { ActionButton } from '../components/ActionButton.tsx';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { JsonBlock } from '../components/Json.tsx';
import { LossChart } from '../components/LossChart.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { Recipe } from '../components/Recipe.tsx';
import { TemplateOrigin } from '../components/TemplateOrigin.tsx';
import { JobProgress, StatusBadge } from '../components/Status.tsx';
import { useApi } from '../context.ts';
import { JOB_POLL_MS, useLoad } from '../load.ts';
import { href } from '../router.ts';
import type { Bake, Download, MetricsRow, Pipeline } from '../types.ts';

export function BakePage({ repo, bake }: { repo: string; bake: string }) {
  const api = useApi();
  const base = apiPath('/v1/repo', repo, 'bakes', bake);
  // The status and the metrics together, so the chart and the progress bar agree.
  const state = useLoad(
    async (api, signal) => {
      const [status, metrics] = await Promise.all([api.get<Bake>(base, { signal }), api.get<MetricsRow[]>(`${base}/metrics`, { signal })]);
      return { status, metrics };
    },
    [repo, bake],
    (data) => (data.status.status === 'running' ? JOB_POLL_MS : null),
  );
  const pipeline = useLoad(
    (api, signal) =>
      api.get<Pipeline>(`${base}/pipeline`, { signal }).catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 404) return null; // never run
        throw error;
      }),
    [repo, bake],
    (data) => (data?.status === 'running' ? JOB_POLL_MS : null),
  );
  // While a pipeline runs its jobs, each of its polls also refreshes the bake it ends with.
  const reloadState = state.reload;
  useEffect(() => {
    if (pipeline.data) reloadState();
  }, [pipeline.data, reloadState]);
  const status = state.data?.status;
  const datasets = (status?.config?.datasets as { target: string; weight?: number }[] | undefined) ?? [];
  const parent = (status?.config?.model as { parent_model_name?: string } | undefined)?.parent_model_name;

  const download = async (checkpoint: number) => {
    const answer = await api.get<Download>(`${base}/download`, { query: { checkpoint } });
    // A navigation, not a fetch: the browser saves the archive itself, whatever its size.
    const link = Object.assign(document.createElement('a'), { href: answer.url, download: `${bake}-${checkpoint}.tar.gz`, rel: 'noopener' });
    document.body.append(link);
    link.click();
    link.remove();
  };

  return (
    <>
      <p class="crumbs">
        <a href={href([])}>Repos</a> / <a href={href(['repos', repo])}>{repo}</a> / bakes /
      </p>
      <PageTitle title={bake} />
      <ErrorNote error={state.error} />
      {status ? (
        <>
          <JobProgress label="Bake" job={status} />
          {status.loss ? (
            <p class="muted">
              Loss: latest {status.loss.latest_loss.toPrecision(3)}, min {status.loss.min_loss.toPrecision(3)}, max {status.loss.max_loss.toPrecision(3)}
              {status.loss.final_loss === null || status.loss.final_loss === undefined ? '' : `, final ${status.loss.final_loss.toPrecision(3)}`}
            </p>
          ) : null}
          <div class="actions">
            <ActionButton label="Run bake" disabled={status.status === 'running' || status.status === 'complete'} run={() => api.post(base).then(state.reload)} />
            <ActionButton label="Run pipeline" disabled={pipeline.data?.status === 'running'} run={() => api.post(`${base}/pipeline`).then(() => (pipeline.reload(), state.reload()))} />
          </div>
        </>
      ) : state.loading ? (
        <p aria-live="polite">Loading…</p>
      ) : null}

      {pipeline.data ? (
        <section aria-labelledby="pipeline-heading">
          <h2 id="pipeline-heading">
            Pipeline <StatusBadge status={pipeline.data.status} />
          </h2>
          <ErrorNote error={pipeline.data.error} />
          <ol class="steps">
            {pipeline.data.steps.map((step) => (
              <li key={`${step.kind}:${step.name}`}>
                {step.kind} <code>{step.name}</code> <StatusBadge status={step.status} />
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      <ErrorNote error={pipeline.error} />

      <section aria-labelledby="loss-heading">
        <h2 id="loss-heading">Loss and learning rate</h2>
        {state.data ? <LossChart title={`Loss of ${bake}`} rows={state.data.metrics} /> : null}
      </section>

      {status ? (
        <section aria-labelledby="checkpoints-heading">
          <h2 id="checkpoints-heading">Checkpoints</h2>
          {status.model_name?.length ? (
            <ul class="checkpoints">
              {status.model_name.map((model) => {
                const step = Number(model.split('/').at(-1));
                return (
                  <li key={model}>
                    <code>{model}</code>
                    <ActionButton label={`Download step ${step}`} run={() => download(step)} />
                    <a class="button secondary" href={href(['chat'], { model })}>
                      Chat with step {step}
                    </a>
                  </li>
                );
              })}
            </ul>
          ) : (
            <p>No checkpoints yet: they appear when the bake completes.</p>
          )}
        </section>
      ) : null}

      {status ? (
        <section aria-labelledby="config-heading">
          <h2 id="config-heading">Configuration</h2>
          <TemplateOrigin repo={repo} kind="bakes" template={status.template} />
          <p>
            Starts from {parent ? <code>{parent}</code> : 'the repo’s base model'}; trains on{' '}
            {datasets.length
              ? datasets.map((dataset, index) => (
                  <span key={dataset.target}>
                    {index ? ', ' : ''}
                    <a href={href(['repos', repo, 'targets', dataset.target])}>{dataset.target}</a>
                    {dataset.weight === undefined ? '' : ` (weight ${dataset.weight})`}
                  </span>
                ))
              : 'no targets yet'}
            .
          </p>
          <JsonBlock summary="Resolved configuration (its template merged with its overrides)" value={status.config} />
        </section>
      ) : null}

      <section aria-labelledby="recipe-heading">
        <h2 id="recipe-heading">Recipe</h2>
        <Recipe repo={repo} bake={bake} />
      </section>
    </>
  );
}

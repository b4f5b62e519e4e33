import { useState } from 'preact/hooks';
import { apiPath } from '../api.ts';
import { ActionButton } from '../components/ActionButton.tsx';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { JsonBlock } from '../components/Json.tsx';
import { OutputPager } from '../components/OutputPager.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { TemplateOrigin } from '../components/TemplateOrigin.tsx';
import { JobProgress } from '../components/Status.tsx';
import { useApi } from '../context.ts';
import { JOB_POLL_MS, useLoad } from '../load.ts';
import { href } from '../router.ts';
import type { JobState, Target } from '../types.ts';

const whileRunning = (job: JobState) => (job.status === 'running' ? JOB_POLL_MS : null);

export function TargetPage({ repo, target }: { repo: string; target: string }) {
  const api = useApi();
  const base = apiPath('/v1/repo', repo, 'targets', target);
  const definition = useLoad((api, signal) => api.get<Target>(base, { signal }), [repo, target]);
  const stim = useLoad((api, signal) => api.get<JobState>(`${base}/stim`, { signal }), [repo, target], whileRunning);
  const rollout = useLoad((api, signal) => api.get<JobState>(`${base}/rollout`, { signal }), [repo, target], whileRunning);
  const [shown, setShown] = useState<'stim' | 'rollout'>('rollout');
  const output = shown === 'stim' ? stim.data : rollout.data;

  return (
    <>
      <p class="crumbs">
        <a href={href([])}>Repos</a> / <a href={href(['repos', repo])}>{repo}</a> / targets /
      </p>
      <PageTitle title={target} />
      <ErrorNote error={definition.error} />
      {definition.data ? (
        <>
          <p>
            Teacher prompt <code>{definition.data.config.teacher_prompt}</code>, student prompt <code>{definition.data.config.student_prompt}</code>, rollouts
            from <code>{definition.data.config.model_name}</code>
          </p>
          <TemplateOrigin repo={repo} kind="targets" template={definition.data.template} />
          <JsonBlock summary="Configuration" value={definition.data.config} />
        </>
      ) : null}

      <section aria-labelledby="jobs-heading">
        <h2 id="jobs-heading">Jobs</h2>
        <ErrorNote error={stim.error ?? rollout.error} />
        {stim.data ? <JobProgress label="Stim" job={stim.data} /> : null}
        {rollout.data ? <JobProgress label="Rollout" job={rollout.data} /> : null}
        <div class="actions">
          <ActionButton label="Run stim" disabled={stim.data?.status === 'running' || stim.data?.status === 'complete'} run={() => api.post(`${base}/stim`).then(stim.reload)} />
          <ActionButton
            label="Run rollout"
            disabled={stim.data?.status !== 'complete' || rollout.data?.status === 'running' || rollout.data?.status === 'complete'}
            run={() => api.post(`${base}/rollout`).then(rollout.reload)}
          />
        </div>
      </section>

      <section aria-labelledby="output-heading">
        <h2 id="output-heading">Output</h2>
        <div class="tabs" role="group" aria-label="Which output">
          <button type="button" class="tab" aria-pressed={shown === 'rollout'} onClick={() => setShown('rollout')}>
            Rollout
          </button>
          <button type="button" class="tab" aria-pressed={shown === 'stim'} onClick={() => setShown('stim')}>
            Stim
          </button>
        </div>
        {output ? <OutputPager key={shown} repo={repo} target={target} kind={shown} lines={output.lines ?? 0} /> : null}
      </section>
    </>
  );
}

import type { JobState } from '../types.ts';

const LABELS: Record<string, string> = { not_started: 'not started', pending: 'not started' };

/** A job or bake status as a word with a colour; the word carries the meaning, not the colour. */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`status status-${status}`}>{LABELS[status] ?? status}</span>;
}

/** A job's status, progress bar and line count, with its error when it failed. */
export function JobProgress({ label, job }: { label: string; job: JobState }) {
  const percent = job.progress_percent ?? 0;
  const lines = job.lines === null ? '' : ` · ${job.lines.toLocaleString('en')}${job.total_expected ? ` of ${job.total_expected.toLocaleString('en')}` : ''} lines`;
  return (
    <div class="job">
      <div class="job-head">
        <strong>{label}</strong> <StatusBadge status={job.status} />
        <span class="muted">
          {job.progress_percent === null ? '' : ` ${percent.toFixed(0)}%`}
          {lines}
        </span>
      </div>
      {job.status === 'not_started' ? null : <progress max={100} value={percent} aria-label={`${label} progress`} />}
      {job.error ? (
        <p class="error" role="alert">
          {job.error}
        </p>
      ) : null}
    </div>
  );
}

import type { JobStatus } from '../../schemas/bread.ts';
import type { JobRecord } from './job-records.ts';
import type { JobOutputs } from './job-outputs.ts';
import { wireStatus } from './state-machine.ts';

/** The status object shared by stim, rollout and bake responses (bread-api.md §8.3). */
export interface JobStatusView {
  status: JobStatus;
  lines: number | null;
  error: string | null;
  job_id: number | null;
  progress_percent: number | null;
}

/**
 * Reads live progress for a running job from its files, and the recorded outcome otherwise:
 * 0.0 while queued, 100.0 once complete, null before any run.
 */
export async function statusView(job: JobRecord | undefined, outputs: JobOutputs, countsLines: boolean): Promise<JobStatusView> {
  if (!job) return { status: 'not_started', lines: null, error: null, job_id: null, progress_percent: null };
  const status = wireStatus(job.state);
  const live = job.state === 'running' || job.state === 'failed' ? await outputs.progress(job.job_id) : undefined;
  const progress =
    job.state === 'complete' ? 100 : job.state === 'queued' || job.state === 'submitted' ? 0 : (live?.percent ?? (status === 'failed' ? null : 0));
  const lines = !countsLines ? null : job.state === 'complete' && job.lines !== undefined ? job.lines : await outputs.lineCount(job.job_id);
  return { status, lines, error: job.error, job_id: job.job_id, progress_percent: progress };
}

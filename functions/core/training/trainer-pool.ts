import type { Blobs } from '../../ports/blobs.ts';
import type { Item, Store } from '../../ports/store.ts';
import { JOB_SPEC_VERSION } from '../../schemas/job-spec.ts';
import type { JobPipeline } from '../jobs/job-pipeline.ts';
import type { JobRecord, JobRecords } from '../jobs/job-records.ts';
import { relayJobOf, startRelayJob } from '../jobs/relay-jobs.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import { runStatePrefix } from './checkpoint-paths.ts';
import { runKey, runModelSpec, trainerJobOf, trainerOwner } from './run-records.ts';

/** The trainer asking no longer serves its run (it ended, the run was deactivated, or another took over): it should stop. */
export class TrainerRetiredError extends Error {
  constructor(jobId: number) {
    super(`Trainer job ${jobId} no longer serves its run`);
    this.name = 'TrainerRetiredError';
  }
}

/**
 * One trainer job per run (DESIGN.md §1: a long-running compute job reached by relay), started
 * when the run is created and again when an operation arrives after it scaled to zero. Each
 * trainer gets its own relay token; the job record keeps only its hash.
 */
export class TrainerPool {
  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly records: JobRecords,
    private readonly pipeline: JobPipeline,
  ) {}

  /** The run's trainer job, started when none is queued or running (the run item as read just before). */
  async ensure(run: Item): Promise<JobRecord> {
    const current = trainerJobOf(run);
    if (current && !isTerminal(current.state)) return current;
    return startRelayJob(this.pipeline, {
      kind: 'trainer',
      owner: trainerOwner(run),
      ownerItem: run,
      spec: (jobId, outputUri, relayToken) => ({
        version: JOB_SPEC_VERSION,
        job_id: jobId,
        kind: 'trainer',
        output_uri: outputUri,
        trainer: {
          run_id: run.id as string,
          model: runModelSpec(run),
          lora_rank: run.lora_rank as number,
          seed: run.seed as number | null,
          max_seq_len: run.max_seq_len as number | null,
          relay_url: run.relay_url as string,
          relay_token: relayToken,
          idle_timeout_s: run.scale_down_delay_seconds as number,
          state_uri: this.blobs.uriFor(runStatePrefix(run.id as string)),
        },
      }),
    });
  }

  /**
   * The trainer job behind a relay call, and its run as read now. UnauthorizedError for a wrong
   * token; TrainerRetiredError when the job ended, is no longer the run's current trainer, or
   * the run no longer takes operations.
   */
  async authorize(jobId: number, token: string): Promise<{ job: JobRecord; run: Item }> {
    const job = await relayJobOf(this.records, 'trainer', jobId, token);
    if (isTerminal(job.state)) throw new TrainerRetiredError(jobId);
    const run = await this.store.get(runKey(job.owner.name));
    if (!run || run.state !== 'active' || run.trainer_job_id !== jobId) throw new TrainerRetiredError(jobId);
    return { job, run };
  }
}

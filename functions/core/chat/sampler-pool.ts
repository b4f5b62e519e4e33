import { ConditionFailedError, type Item, type Store } from '../../ports/store.ts';
import { JOB_SPEC_VERSION } from '../../schemas/job-spec.ts';
import { keys } from '../keys.ts';
import type { JobPipeline } from '../jobs/job-pipeline.ts';
import { relayJobOf, startRelayJob } from '../jobs/relay-jobs.ts';
import { currentJob, samplerOwner, type JobRecord, type JobRecords } from '../jobs/job-records.ts';
import { isTerminal } from '../jobs/state-machine.ts';

export interface SamplerSettings {
  /** A sampler with no request for this long stops; the next request starts a new one. */
  idleTimeoutS: number;
  /** Adapters a sampler keeps loaded. */
  maxHotAdapters: number;
  /** Requests a sampler generates together at most. */
  maxBatch: number;
  /** The most tokens a request without `max_tokens` generates (chat and token-level sampling alike). */
  maxUnsetTokens: number;
}

export const DEFAULT_SAMPLER_SETTINGS: SamplerSettings = { idleTimeoutS: 600, maxHotAdapters: 8, maxBatch: 8, maxUnsetTokens: 4096 };

/** The sampler asking is not (or no longer) the one serving its base model: it should stop. */
export class SamplerRetiredError extends Error {
  constructor(jobId: number) {
    super(`Sampler job ${jobId} is no longer serving`);
    this.name = 'SamplerRetiredError';
  }
}

/**
 * One sampler job per base model, started on first use (DESIGN.md §1: a long-running compute job
 * reached by relay). Each sampler gets its own relay token; the job record keeps only its hash.
 */
export class SamplerPool {
  constructor(
    private readonly store: Store,
    private readonly records: JobRecords,
    private readonly pipeline: JobPipeline,
    private readonly settings: SamplerSettings,
  ) {}

  /** The base model's sampler job, started when none is queued or running. */
  async ensure(baseModel: string, relayUrl: string): Promise<JobRecord> {
    const slot = await this.slot(baseModel);
    const current = currentJob(slot, 'sampler');
    if (current && !isTerminal(current.state)) return current;
    return startRelayJob(this.pipeline, {
      kind: 'sampler',
      owner: samplerOwner(baseModel),
      ownerItem: slot,
      spec: (jobId, outputUri, relayToken) => ({
        version: JOB_SPEC_VERSION,
        job_id: jobId,
        kind: 'sampler',
        output_uri: outputUri,
        sampler: {
          base_model: baseModel,
          relay_url: relayUrl,
          relay_token: relayToken,
          idle_timeout_s: this.settings.idleTimeoutS,
          max_hot_adapters: this.settings.maxHotAdapters,
          max_batch: this.settings.maxBatch,
          max_unset_tokens: this.settings.maxUnsetTokens,
        },
      }),
    });
  }

  /**
   * The sampler job behind a relay call. 401 for a wrong token; SamplerRetiredError when the job
   * has ended or a newer sampler took its place.
   */
  async authorize(jobId: number, token: string): Promise<JobRecord> {
    const job = await relayJobOf(this.records, 'sampler', jobId, token);
    if (isTerminal(job.state)) throw new SamplerRetiredError(jobId);
    const current = await this.records.current('sampler', job.owner);
    if (current?.job_id !== jobId) throw new SamplerRetiredError(jobId);
    return job;
  }

  /** The base model's slot item, created on first use (a job's owner must exist). */
  private async slot(baseModel: string): Promise<Item> {
    const key = keys.sampler(baseModel);
    const existing = await this.store.get(key);
    if (existing) return existing;
    const created = { ...key, base_model: baseModel };
    try {
      await this.store.put(created, { exists: false });
      return created;
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      return (await this.store.get(key)) ?? created;
    }
  }
}

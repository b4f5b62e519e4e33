import type { JobKind, JobSpec } from '../schemas/job-spec.ts';

/**
 * The Compute port: runs the engine on a job spec. State changes reach the job-events handler
 * (EventBridge on AWS; process exit locally); `describe` lets the reconciler ask directly.
 */
export interface ComputeJob {
  jobId: number;
  kind: JobKind;
  /** Where the spec is stored, as the engine addresses it. */
  specUri: string;
  spec: JobSpec;
}

export type ComputeState = 'pending' | 'running' | 'succeeded' | 'failed' | 'gone';

export interface ComputeStatus {
  state: ComputeState;
  /** Why it failed or went away, when the platform says. */
  reason?: string;
}

export interface Compute {
  /** Starts the job; returns the platform's id for it. */
  submit(job: ComputeJob): Promise<string>;
  describe(externalId: string): Promise<ComputeStatus>;
  terminate(externalId: string, reason: string): Promise<void>;
}

/** A state change observed on the platform, applied by the job-events handler. */
export interface ComputeEvent {
  externalId: string;
  jobId: number;
  state: Exclude<ComputeState, 'gone'>;
  reason?: string;
}

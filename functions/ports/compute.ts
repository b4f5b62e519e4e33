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

/**
 * What the platform saw end a job that failed or went away: facts, not sentences. The sentence a
 * user reads is composed from these in one place (functions/core/jobs/failure-reasons.ts).
 */
export interface ComputeFailure {
  /** What ended it, when the platform knows. */
  cause?: 'out_of_memory' | 'host_lost' | 'stopped' | 'engine_missing' | 'vanished';
  /** The engine's exit code, when it exited. */
  exitCode?: number;
  /** The signal that killed the engine, e.g. `SIGKILL`. */
  signal?: string;
  /** For `stopped`: the reason given to `terminate` (or to the platform's own stop). */
  stoppedBecause?: string;
}

export interface ComputeStatus {
  state: ComputeState;
  /**
   * The platform's own account of a failure (its status text, the engine's stderr tail), for
   * operators' logs. Never shown to users as it is: it may hold log lines and internal paths.
   */
  reason?: string;
  /** For `failed` and `gone`: what ended the job. */
  failure?: ComputeFailure;
}

export interface Compute {
  /**
   * Starts the job, or queues it until the platform has room; returns the platform's id for it. A
   * queued job still runs when the server or the adapter restarts meanwhile: Batch keeps its own
   * queue, the local adapter its state dir.
   */
  submit(job: ComputeJob): Promise<string>;
  describe(externalId: string): Promise<ComputeStatus>;
  terminate(externalId: string, reason: string): Promise<void>;
}

/** A state change observed on the platform, applied by the job-events handler. */
export interface ComputeEvent {
  externalId: string;
  jobId: number;
  state: Exclude<ComputeState, 'gone'>;
  /** As in ComputeStatus: for operators' logs only. */
  reason?: string;
  failure?: ComputeFailure;
}

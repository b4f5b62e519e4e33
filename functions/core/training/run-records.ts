/**
 * A training run as the Store holds it. The run item is also the owner item of its trainer job
 * (job-records.ts), so it carries the current job's summary (`trainer_job`) beside the run's own
 * attributes: the model spec the trainer loads, where the trainer reaches the API, the last
 * operation sequence number handed out, the operation the trainer holds, and when a client last
 * used the run.
 */
import type { Item, Key } from '../../ports/store.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { RunInactiveError } from '../errors.ts';
import { currentJob, type JobOwner, type JobRecord } from '../jobs/job-records.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import { keys } from '../keys.ts';
import type { TrainerPhase, TrainingRun } from './model.ts';

export function trainerOwner(run: Item): JobOwner {
  return { userId: run.user_id as string, repo: '', name: run.id as string };
}

export function runKey(runId: string): Key {
  return keys.trainingRun(runId);
}

export function trainerJobOf(run: Item): JobRecord | undefined {
  return currentJob(run, 'trainer');
}

/**
 * Derived, never stored: a run is ready while the trainer job that said so is still its current
 * one, scaled to zero once that job ended on its own (idle), and starting otherwise.
 */
export function phaseOf(run: Item): TrainerPhase {
  const job = trainerJobOf(run);
  if (job?.state === 'complete') return 'scaled_to_zero';
  if (job && !isTerminal(job.state) && run.ready_job_id === job.job_id) return 'ready';
  return 'starting';
}

export function isOwnRun(actor: Actor, run: Item | undefined): run is Item {
  return run !== undefined && run.user_id === actor.userId;
}

export function runModelSpec(run: Item): ModelSpec {
  return run.model_spec as ModelSpec;
}

/** Throws RunInactiveError, with why, unless the run takes requests. */
export function assertActive(run: Item): void {
  if (run.state === 'inactive') {
    throw new RunInactiveError(`Run ${run.id as string} was deactivated; its checkpoints are kept, so create a new run from one to continue training.`);
  }
  if (run.state === 'failed') {
    // The trainer's reasons already say what to do next (trainer-pool.ts); this one is for a run failed without one.
    const reason = (run.error as string | null) ?? 'its trainer stopped; create a new run, from one of its checkpoints if it saved any, to continue training.';
    throw new RunInactiveError(`Run ${run.id as string} failed: ${reason}`);
  }
}

export function toRun(run: Item): TrainingRun {
  return {
    id: run.id as string,
    userId: run.user_id as string,
    sessionId: run.session_id as string,
    protocol: run.protocol as TrainingRun['protocol'],
    name: run.name as string | null,
    baseModel: run.base_model as string,
    loraRank: run.lora_rank as number,
    seed: run.seed as number | null,
    maxSeqLen: run.max_seq_len as number | null,
    availabilityModel: run.availability_model as TrainingRun['availabilityModel'],
    scaleDownDelaySeconds: run.scale_down_delay_seconds as number,
    fromPath: run.from_path as string | null,
    alias: (run.alias as string | null | undefined) ?? null,
    state: run.state as TrainingRun['state'],
    phase: phaseOf(run),
    error: run.error as string | null,
    createdAt: run.created_at as string,
    updatedAt: run.updated_at as string,
  };
}

import type { JobStatus } from '../../schemas/bread.ts';

/**
 * A job's internal states (DESIGN.md §4). Transitions only move forward, so a late or repeated
 * event (a redelivered message, `running` after `complete`) can never undo a later state.
 */
export const JOB_STATES = ['queued', 'submitted', 'running', 'complete', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

const RANK: Record<JobState, number> = { queued: 0, submitted: 1, running: 2, complete: 3, failed: 3 };

export const ACTIVE_STATES: readonly JobState[] = ['queued', 'submitted', 'running'];

export function isTerminal(state: JobState): boolean {
  return state === 'complete' || state === 'failed';
}

export function canTransition(from: JobState, to: JobState): boolean {
  return !isTerminal(from) && RANK[to] > RANK[from];
}

/** The wire status (bread-api.md §8.3, Q11): a queued job shows as running. */
export function wireStatus(state: JobState | undefined): JobStatus {
  if (state === undefined) return 'not_started';
  if (state === 'complete' || state === 'failed') return state;
  return 'running';
}

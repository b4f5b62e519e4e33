import type { ComputeFailure } from '../../ports/compute.ts';
import type { JobKind } from '../../schemas/job-spec.ts';
import type { JobOwner } from './job-records.ts';

/**
 * The one place where a failed job's `error` is worded: a sentence saying what happened and what
 * to do. The detail (the engine's log, the platform's own words) stays in the job's log and the
 * operators' logs; a reason shown to users never carries log lines or internal paths.
 */
export interface FailureFacts {
  kind: JobKind;
  owner: JobOwner;
  /** The engine's own sentence, from result.json. */
  engineError?: string | null;
  /** What the platform saw, when the engine died without a result. */
  failure?: ComputeFailure;
  /** The engine exited 0 but wrote no result. */
  exitedWithoutResult?: boolean;
  /** The job's last reported progress. */
  percent?: number;
}

const NOUN: Record<JobKind, string> = { stim: 'stim job', rollout: 'rollout', bake: 'bake', sampler: 'model server', trainer: 'trainer' };

/** Signal numbers the engine may die of (Linux numbering, as exit codes 128 + n report them). */
const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };

/** Longest reason kept: a sentence or two, never a dump. */
const MAX_REASON_LENGTH = 500;

export function failureSentence(facts: FailureFacts): string {
  if (facts.engineError) return userFacing(facts.engineError);
  const { kind, failure = {} } = facts;
  const noun = NOUN[kind];
  const The = `The ${noun}`;
  const at = progressPhrase(facts.percent);
  const again = kind === 'sampler' ? 'try again' : kind === 'trainer' ? 'create a new run from its last saved checkpoint' : 'run it again';
  const seeLog = logPointer(kind, facts.owner);
  if (facts.exitedWithoutResult) return `${The} ended without writing its result; ${seeLog}, then ${again}.`;
  switch (failure.cause) {
    case 'out_of_memory':
      return `${The} ran out of memory${at} and was stopped; ${memoryAdvice(kind)}.`;
    case 'host_lost':
      return `${The} lost its machine${at} (a Spot reclaim or a host failure); ${again}.`;
    case 'stopped':
      return userFacing(`${The} was stopped${at} before it finished${failure.stoppedBecause ? ` (${sentenceBody(failure.stoppedBecause)})` : ''}; ${again}.`);
    case 'engine_missing':
      return `The engine environment is missing on this server; create it with \`npm run setup\`, then ${again}.`;
    case 'vanished':
      return `${The} ended${at} without an exit code (it was killed or the machine restarted); ${again}.`;
  }
  const signal = signalOf(failure);
  if (signal) {
    const oom = signal.name === 'SIGKILL' ? ', out of memory?' : '';
    if (kind === 'sampler') return `${The} stopped unexpectedly (signal ${signal.label}${oom}); try again.`;
    return `${The} was stopped by signal ${signal.label}${signal.name ? ` (${signal.name}${oom})` : ''}${at}; ${again}.`;
  }
  if (failure.exitCode !== undefined && failure.exitCode !== 0) {
    return `${The} failed${at}: the engine exited with code ${failure.exitCode} without saying why; ${seeLog}, then ${again}.`;
  }
  return `${The} failed${at} without saying why; ${seeLog}, then ${again}.`;
}

/**
 * The last line of defence for any reason shown to users: its first line only, internal paths
 * (file://, s3://, absolute filesystem paths) replaced, and a bounded length. API paths (`/v1/…`)
 * are the user's own routes and stay.
 */
export function userFacing(reason: string): string {
  const firstLine = reason.trim().split(/\r?\n/, 1)[0] ?? '';
  const scrubbed = firstLine
    .replace(/\b(?:file|s3):\/\/(?:[^\s'"`)]*[^\s'"`).,;:])?/g, '[internal path]')
    .replace(/(^|[\s'"`(=:])(?!\/v1\/)(?:~|\.{1,2})?\/(?:[\w.@+-]+\/)+[\w.@+-]*/g, '$1[internal path]')
    .replace(/(^|[\s'"`(=:])(?!\/v1\/)\/[\w.@+-]+(?=[\s'"`),;:]|$)/g, '$1[internal path]');
  return scrubbed.length > MAX_REASON_LENGTH ? `${scrubbed.slice(0, MAX_REASON_LENGTH - 1)}…` : scrubbed;
}

function progressPhrase(percent: number | undefined): string {
  return percent !== undefined && percent > 0 && percent < 100 ? ` at ${Math.floor(percent)}%` : '';
}

/** The signal that killed the engine, named or as exit code 128 + n reports it. */
function signalOf(failure: ComputeFailure): { label: string; name?: string } | undefined {
  if (failure.signal) {
    const number = SIGNALS[failure.signal];
    return number === undefined ? { label: failure.signal } : { label: String(number), name: failure.signal };
  }
  const code = failure.exitCode;
  if (code === undefined || code <= 128 || code > 128 + 64) return undefined;
  const name = Object.keys(SIGNALS).find((candidate) => SIGNALS[candidate] === code - 128);
  return { label: String(code - 128), ...(name ? { name } : {}) };
}

function memoryAdvice(kind: JobKind): string {
  if (kind === 'bake') return 'lower micro_batch_size or data.max_length, or use larger instances, then run it again';
  if (kind === 'sampler') return 'try again with a shorter conversation or fewer requests at once';
  if (kind === 'trainer') return 'send fewer or shorter examples per forward_backward, or use larger instances, then create a new run from its last saved checkpoint';
  return 'lower max_concurrency or max_tokens, or use larger instances, then run it again';
}

/** Where the owner downloads the job's log (routes/jobs.ts); samplers' and trainers' logs are the operator's. */
function logPointer(kind: JobKind, owner: JobOwner): string {
  if (kind === 'sampler' || kind === 'trainer') return "the server's log has the details";
  const path = kind === 'bake' ? `bakes/${owner.name}` : `targets/${owner.name}/${kind}`;
  return `its log (GET /v1/repo/${owner.repo}/${path}/logs) has the details`;
}

/** A reason given to `terminate` as a clause: no final full stop, first letter lower-cased. */
function sentenceBody(reason: string): string {
  const trimmed = reason.trim().replace(/[.;]+$/, '');
  return trimmed.charAt(0).toLowerCase() + trimmed.slice(1);
}

/**
 * The training service's domain (DESIGN.md §1, loops-api.md §3.2): sessions, runs, samplers,
 * checkpoints and operations, protocol-neutral. The Loops front (functions/http/routes/loops/) and
 * the Tinker front translate their wire formats to and from these types; neither engine knows
 * which protocol a request came in by.
 */
import type { LoraConfig, Normalization, TrainerOperation } from '../../schemas/trainer.ts';

/** Which front created a run: it decides only how the run is shown (paths, ids), never how it trains. */
export type TrainingProtocol = 'loops' | 'tinker';

export interface TrainingSession {
  id: string;
  userId: string;
  trainingProjectId: string | null;
  createdAt: string;
  /** When the client said it was done with the session; null while it is in use. */
  finishedAt: string | null;
}

/**
 * `active`: accepting operations (its trainer may be starting, ready, or scaled to zero and
 * coming back on the next operation). `inactive`: deactivated by the user, for good. `failed`:
 * the trainer failed (`error` says why); its checkpoints stay readable.
 */
export type RunState = 'active' | 'inactive' | 'failed';

/** Where a run's trainer is: what `/health` reports while the run is active. */
export type TrainerPhase = 'starting' | 'ready' | 'scaled_to_zero';

export interface TrainingRun {
  id: string;
  userId: string;
  sessionId: string;
  protocol: TrainingProtocol;
  name: string | null;
  /** Exactly as the caller gave it: clients load tokenizers by this string. */
  baseModel: string;
  loraRank: number;
  seed: number | null;
  maxSeqLen: number | null;
  availabilityModel: 'dedicated' | 'spot';
  scaleDownDelaySeconds: number;
  /** The checkpoint path the run was created from (`create_training_client_from_state`), if any. */
  fromPath: string | null;
  /** A front's own name for the run (Tinker's `model_id`), if the front gave one. */
  alias: string | null;
  state: RunState;
  phase: TrainerPhase;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface TrainingSampler {
  id: string;
  userId: string;
  sessionId: string;
  /** Paired samplers belong to a run (one per run); standalone ones have none. */
  runId: string | null;
  baseModel: string;
  /** A standalone sampler created from a `sampler_weights` checkpoint serves that adapter by default. */
  modelPath: string | null;
  /** A front's own name for the sampler (Tinker's `sampling_session_id`); absent when the front gave none. */
  alias?: string;
  createdAt: string;
}

/**
 * `trainer`: resumable training state; `sampler`: a PEFT adapter to sample from; `external`: a
 * PEFT adapter exported for download (Tinker's `save_weights_external`), which nothing loads back.
 */
export type CheckpointTarget = 'trainer' | 'sampler' | 'external';

/** The targets a run trains from or samples: what both fronts name (external weights are Tinker's alone). */
export type TrainOrSampleTarget = Exclude<CheckpointTarget, 'external'>;

/** `T` narrows the targets a listing can hold (TrainingCheckpoints.list leaves external weights out unless asked). */
export interface TrainingCheckpoint<T extends CheckpointTarget = CheckpointTarget> {
  /** 7-character base62 database id, used by the files and source routes. */
  id: string;
  runId: string;
  userId: string;
  /** The saved name (`checkpoint_id` on the Loops wire). */
  name: string;
  target: T;
  /** `bt://loops:<run_id>/weights/<name>`, `…/sampler_weights/<name>` or `…/external_weights/<name>`. */
  path: string;
  baseModel: string;
  loraConfig: LoraConfig;
  step: number;
  files: { name: string; size_bytes: number }[];
  sizeBytes: number;
  /** Published per sampling client (`<name>-<32 hex>` with publish): subject to the retention rule. */
  ephemeral: boolean;
  /** When a `ttl_seconds` save (or a later time to live) expires (ISO-8601), else null. */
  expiresAt: string | null;
  /** Readable by every user, as weights to sample, train from or describe; only its owner manages it. */
  public: boolean;
  createdAt: string;
}

/** What a save writes: training state, sampler weights, or external weights (a PEFT adapter to download). */
export type SaveWhat = 'state' | 'sampler' | 'external';

/**
 * An operation as a front submits it. Saves and loads name checkpoints, not storage: the service
 * picks where the files go and resolves paths to URIs.
 */
export type SubmittedOperation =
  | Exclude<TrainerOperation, { kind: 'save' } | { kind: 'load' }>
  | { kind: 'save'; what: SaveWhat; publish: boolean; name: string; ttlSeconds: number | null }
  | { kind: 'load'; path: string; withOptimizer: boolean };

/** What a front needs to know of the operation a result answers to shape it: its kind, a forward's normalization, what a save wrote. */
export type AnsweredOperation =
  | { kind: 'init' | 'optim_step' | 'load' }
  | { kind: 'forward'; normalization: Normalization }
  | { kind: 'save'; what: SaveWhat };

/**
 * What a poll sees. A `save` result also names the checkpoint it wrote (`path`). A trainer
 * operation's `done` view says which operation it answers, which the engine's result alone does not.
 */
export type OperationView =
  | { status: 'pending' }
  | { status: 'done'; result: Record<string, unknown>; operation?: AnsweredOperation }
  | { status: 'error'; error: string; errorClass: string };

/**
 * The training service (DESIGN.md §1, loops-api.md §3.2): sessions, runs, operations,
 * checkpoints and samplers, protocol-neutral, over one trainer engine reached by relay. The Loops
 * front and the Tinker front call these parts; the engine-facing relay routes call `relay` and
 * `trainers`.
 */
import type { Blobs } from '../../ports/blobs.ts';
import type { Clock } from '../../ports/clock.ts';
import type { Store } from '../../ports/store.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { EventOutbox } from '../events/job-events.ts';
import type { JobPipeline } from '../jobs/job-pipeline.ts';
import type { JobRecord, JobRecords } from '../jobs/job-records.ts';
import type { ModelChain } from '../jobs/model-chain.ts';
import { NotFoundError } from '../errors.ts';
import { keys } from '../keys.ts';
import type { ModelResolver } from '../models.ts';
import { checkpointPrefix } from './checkpoint-paths.ts';
import { TrainingCheckpoints, type CheckpointSettings } from './checkpoints.ts';
import type { TrainingCheckpoint, TrainingSampler } from './model.ts';
import { OperationQueue } from './operation-queue.ts';
import { TrainingOperations } from './operations.ts';
import { RunMetrics } from './run-metrics.ts';
import { runKey, runModelSpec } from './run-records.ts';
import { TrainingRuns } from './runs.ts';
import { TrainingSamplers } from './samplers.ts';
import { SamplerWeights } from './sampler-weights.ts';
import { TrainingSampling, type SamplingParts } from './sampling.ts';
import { TrainingSessions } from './sessions.ts';
import { TrainerPool } from './trainer-pool.ts';
import { TrainerRelay } from './trainer-relay.ts';

export interface TrainingSettings extends CheckpointSettings {
  /** How often a long poll (an operation's, a trainer's `next`) looks at the Store again when nothing in this process woke it. */
  pollMs: number;
  /** How long an operation's result stays readable after it ended (loops-data-plane.md §6.3: at least 1 h). */
  resultRetainS: number;
  /** How long an operation with a client sequence number waits for a missing predecessor before it fails (loops-api.md §2.4: a few minutes). */
  sequenceGapS: number;
}

export const DEFAULT_TRAINING_SETTINGS: TrainingSettings = {
  pollMs: 50,
  resultRetainS: 24 * 60 * 60,
  sequenceGapS: 5 * 60,
  ephemeralKeep: 8,
  ephemeralIdleS: 15 * 60,
  fileUrlExpiresS: 60 * 60,
};

export interface TrainingDeps {
  store: Store;
  blobs: Blobs;
  clock: Clock;
  models: ModelResolver;
  chain: ModelChain;
  records: JobRecords;
  pipeline: JobPipeline;
  outbox: EventOutbox;
  settings: TrainingSettings;
  /** The chat sampler's relay and jobs, which token-level sampling shares (one sampler engine). */
  sampling: Pick<SamplingParts, 'relay' | 'pool' | 'watch' | 'livenessMs'>;
}

export class TrainingService {
  readonly sessions: TrainingSessions;
  readonly runs: TrainingRuns;
  readonly operations: TrainingOperations;
  readonly checkpoints: TrainingCheckpoints;
  readonly samplers: TrainingSamplers;
  readonly samplerWeights: SamplerWeights;
  readonly sampling: TrainingSampling;
  /** The engine side: relay tokens and trainer jobs. */
  readonly trainers: TrainerPool;
  readonly relay: TrainerRelay;
  /** The runs' loss per optimizer step. */
  readonly metrics: RunMetrics;
  private readonly store: Store;
  private readonly blobs: Blobs;

  constructor({ store, blobs, clock, models, chain, records, pipeline, outbox, settings, sampling }: TrainingDeps) {
    this.store = store;
    this.blobs = blobs;
    const queue = new OperationQueue(store, blobs, clock, settings);
    this.sessions = new TrainingSessions(store, clock);
    this.checkpoints = new TrainingCheckpoints(store, blobs, clock, settings);
    this.trainers = new TrainerPool(store, blobs, records, pipeline);
    this.metrics = new RunMetrics(store, clock);
    this.relay = new TrainerRelay(store, clock, queue, this.checkpoints, this.trainers, outbox, this.metrics);
    this.runs = new TrainingRuns(store, clock, models, chain, this.sessions, this.checkpoints, this.trainers, pipeline, queue, this.relay, outbox);
    this.operations = new TrainingOperations(blobs, this.runs, this.checkpoints, queue, this.trainers, this.relay);
    this.samplers = new TrainingSamplers(store, clock, this.sessions, this.runs, this.checkpoints);
    this.samplerWeights = new SamplerWeights(this.checkpoints, (checkpoint) => this.modelSpecFor(checkpoint));
    this.sampling = new TrainingSampling({ ...sampling, samplers: this.samplers, weights: this.samplerWeights, baseSpec: (sampler) => this.samplers.baseSpec(sampler) });
  }

  /**
   * What a sampler loads to serve a checkpoint (its run's base with that base's adapter chain,
   * then the checkpoint's adapter last), or a sampler's own model (its checkpoint's, when made
   * from a `model_path`, else its base model's chain).
   */
  async modelSpecFor(source: TrainingCheckpoint | TrainingSampler): Promise<ModelSpec> {
    if ('path' in source) {
      const run = await this.store.get(runKey(source.runId));
      if (!run) throw new Error(`Run ${source.runId} of checkpoint ${source.id} is missing`);
      const base = runModelSpec(run);
      // A save under the same name rewrites the files: samplers key their adapter cache on createdAt too.
      const adapter = { model_name: source.path, uri: this.blobs.uriFor(checkpointPrefix(source)), version: source.createdAt };
      return { base_model: base.base_model, adapters: [...base.adapters, adapter] };
    }
    if (source.modelPath === null) return this.samplers.baseSpec(source);
    const checkpoint = await this.checkpoints.readable({ userId: source.userId, isAdmin: false }, source.modelPath);
    if (!checkpoint) throw new NotFoundError(`Checkpoint ${source.modelPath}, which this sampler serves, no longer exists; create a sampler from another checkpoint.`);
    return this.modelSpecFor(checkpoint);
  }

  /** JobPipeline calls this with every job that ended; trainers' ends move their runs. */
  async onJobEnded(job: JobRecord): Promise<void> {
    if (job.kind === 'trainer') await this.relay.onJobEnded(job);
  }

  /**
   * The reconciler's pass: applies trainer ends that were not applied (a lost event, a crash in
   * between), then deletes checkpoints due under the retention rules.
   */
  async sweep(): Promise<void> {
    for (const marker of (await this.store.query(keys.activeTrainingRuns)).items) {
      const run = await this.store.get(runKey(marker.sk));
      if (run) await this.relay.sync(run);
    }
    await this.checkpoints.sweep();
  }
}

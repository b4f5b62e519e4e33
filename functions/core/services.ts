import type { Blobs } from '../ports/blobs.ts';
import type { Clock } from '../ports/clock.ts';
import type { Compute } from '../ports/compute.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import type { Store } from '../ports/store.ts';
import { ApiKeyService } from './api-keys.ts';
import { BakeService } from './bakes.ts';
import { ChatRelay } from './chat/chat-relay.ts';
import { ChatService, DEFAULT_CHAT_TIMING, type ChatTiming } from './chat/chat-service.ts';
import { DEFAULT_SAMPLER_SETTINGS, SamplerPool, type SamplerSettings } from './chat/sampler-pool.ts';
import { SamplerWatch } from './chat/sampler-watch.ts';
import { DatasetService } from './datasets.ts';
import type { EventPublisher } from './events/events.ts';
import { EventOutbox } from './events/job-events.ts';
import { IdempotencyService } from './idempotency.ts';
import { BakeJobs } from './jobs/bake-jobs.ts';
import { JobOutputs } from './jobs/job-outputs.ts';
import { JobPipeline } from './jobs/job-pipeline.ts';
import { JobRecords } from './jobs/job-records.ts';
import { ModelChain } from './jobs/model-chain.ts';
import { TargetJobs } from './jobs/target-jobs.ts';
import { ModelResolver, type ModelCatalog } from './models.ts';
import { PipelineService } from './pipelines/pipelines.ts';
import { PromptService } from './prompts.ts';
import { RecipeService } from './recipes.ts';
import { RepoService } from './repos.ts';
import { TargetService } from './targets.ts';
import { DEFAULT_TRAINING_SETTINGS, TrainingService, type TrainingSettings } from './training/training-service.ts';
import { SeenDeliveries } from './triggers/seen-deliveries.ts';
import { TriggerService } from './triggers/triggers.ts';
import { NO_DELIVERY, type WebhookDeliveryPorts } from './webhooks/ports.ts';
import { WebhookService } from './webhooks/webhook-service.ts';

export interface ServiceDeps {
  store: Store;
  blobs: Blobs;
  queue: JobQueue;
  compute: Compute;
  clock: Clock;
  catalog: ModelCatalog;
  sampler?: Partial<SamplerSettings>;
  /** Requests that may wait for one base model's sampler before more are refused (chat-relay.ts). */
  samplerMaxQueued?: number;
  chatTiming?: Partial<ChatTiming>;
  /** Training polls, result retention and checkpoint retention (core/training). */
  training?: Partial<TrainingSettings>;
  /** URI prefixes `from_dataset` generators may read besides shipped and uploaded datasets (datasets.ts). */
  datasetUriPrefixes?: readonly string[];
  /** Where job and pipeline events go (DESIGN.md §7a); the webhooks service unless a test listens itself. */
  publisher?: EventPublisher;
  /** How webhooks reach their endpoints; unset, deliveries are stored and nothing is sent. */
  webhookDelivery?: WebhookDeliveryPorts;
}

export type Services = ReturnType<typeof createServices>;

/** Wires the domain services over the ports; the only place they are constructed. */
export function createServices({ store, blobs, queue, compute, clock, catalog, sampler, samplerMaxQueued, chatTiming, training: trainingSettings, datasetUriPrefixes, publisher, webhookDelivery = NO_DELIVERY }: ServiceDeps) {
  const models = new ModelResolver(store, catalog);
  const repos = new RepoService(store, models, clock);
  const prompts = new PromptService(store, repos);
  const datasets = new DatasetService(store, blobs, clock, datasetUriPrefixes);
  const targets = new TargetService(store, repos, models, datasets);
  const bakes = new BakeService(store, repos, models);
  const outputs = new JobOutputs(blobs);
  const records = new JobRecords(store, clock);
  const webhooks = new WebhookService(store, clock, webhookDelivery);
  // Pipelines advance on job events, and start jobs through the job flow: a late-bound listener.
  const outbox = new EventOutbox(store, publisher ?? webhooks, (event): Promise<void> => pipelines.onEvent(event));
  // A run follows its trainer job's end: a late-bound listener, as the training service is built over the pipeline.
  const pipeline = new JobPipeline(records, outputs, queue, compute, clock, outbox, (job): Promise<void> => training.onJobEnded(job));
  const chain = new ModelChain(store, models, outputs);
  const samplers = new SamplerPool(store, records, pipeline, { ...DEFAULT_SAMPLER_SETTINGS, ...sampler });
  const timing = { ...DEFAULT_CHAT_TIMING, ...chatTiming };
  const relay = new ChatRelay(store, blobs, clock, timing.pollMs, samplerMaxQueued);
  const watch = new SamplerWatch(relay, records, samplers, timing.leaseMs);
  const training = new TrainingService({
    store, blobs, clock, models, chain, records, pipeline, outbox,
    settings: { ...DEFAULT_TRAINING_SETTINGS, ...trainingSettings },
    sampling: { relay, pool: samplers, watch, livenessMs: timing.livenessMs },
  });
  const targetJobs = new TargetJobs(targets, prompts, datasets, pipeline, outputs, chain);
  const bakeJobs = new BakeJobs(store, repos, bakes, models, pipeline, outputs, chain, prompts);
  const recipes = new RecipeService(store, repos);
  const pipelines = new PipelineService(store, repos, recipes, bakes, targetJobs, bakeJobs, outbox, clock);
  return {
    apiKeys: new ApiKeyService(store, clock),
    idempotency: new IdempotencyService(store, clock),
    models,
    repos,
    prompts,
    targets,
    datasets,
    bakes,
    recipes,
    pipeline,
    pipelines,
    targetJobs,
    bakeJobs,
    samplers,
    relay,
    training,
    chat: new ChatService(store, models, chain, samplers, relay, watch, training.samplerWeights, clock, timing),
    webhooks,
    triggers: new TriggerService(store, clock, { targets, bakes }, { targetJobs, bakeJobs, pipelines }, new SeenDeliveries(store, clock)),
  };
}

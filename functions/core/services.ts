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
import { DatasetService } from './datasets.ts';
import { IdempotencyService } from './idempotency.ts';
import { BakeJobs } from './jobs/bake-jobs.ts';
import { JobOutputs } from './jobs/job-outputs.ts';
import { JobPipeline } from './jobs/job-pipeline.ts';
import { JobRecords } from './jobs/job-records.ts';
import { ModelChain } from './jobs/model-chain.ts';
import { TargetJobs } from './jobs/target-jobs.ts';
import { ModelResolver, type ModelCatalog } from './models.ts';
import { PromptService } from './prompts.ts';
import { RecipeService } from './recipes.ts';
import { RepoService } from './repos.ts';
import { TargetService } from './targets.ts';

export interface ServiceDeps {
  store: Store;
  blobs: Blobs;
  queue: JobQueue;
  compute: Compute;
  clock: Clock;
  catalog: ModelCatalog;
  sampler?: Partial<SamplerSettings>;
  chatTiming?: Partial<ChatTiming>;
  /** URI prefixes `from_dataset` generators may read besides shipped and uploaded datasets (datasets.ts). */
  datasetUriPrefixes?: readonly string[];
}

export type Services = ReturnType<typeof createServices>;

/** Wires the domain services over the ports; the only place they are constructed. */
export function createServices({ store, blobs, queue, compute, clock, catalog, sampler, chatTiming, datasetUriPrefixes }: ServiceDeps) {
  const models = new ModelResolver(store, catalog);
  const repos = new RepoService(store, models, clock);
  const prompts = new PromptService(store, repos);
  const datasets = new DatasetService(store, blobs, clock, datasetUriPrefixes);
  const targets = new TargetService(store, repos, models, datasets);
  const bakes = new BakeService(store, repos, models);
  const outputs = new JobOutputs(blobs);
  const records = new JobRecords(store, clock);
  const pipeline = new JobPipeline(records, outputs, queue, compute, clock);
  const chain = new ModelChain(store, models, outputs);
  const samplers = new SamplerPool(store, records, pipeline, { ...DEFAULT_SAMPLER_SETTINGS, ...sampler });
  const timing = { ...DEFAULT_CHAT_TIMING, ...chatTiming };
  const relay = new ChatRelay(store, blobs, clock, timing.pollMs);
  return {
    apiKeys: new ApiKeyService(store, clock),
    idempotency: new IdempotencyService(store, clock),
    models,
    repos,
    prompts,
    targets,
    datasets,
    bakes,
    recipes: new RecipeService(store, repos),
    pipeline,
    targetJobs: new TargetJobs(targets, prompts, datasets, pipeline, outputs, chain),
    bakeJobs: new BakeJobs(store, repos, bakes, models, pipeline, outputs, chain),
    samplers,
    relay,
    chat: new ChatService(store, models, chain, records, samplers, relay, clock, timing),
  };
}

import type { Item, Store } from '../../ports/store.ts';
import type { BakeResponse } from '../../schemas/bread.ts';
import { JOB_SPEC_VERSION } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { bakeModelNames, type BakeConfig, type BakeService } from '../bakes.ts';
import { InvalidInputError, NotFoundError } from '../errors.ts';
import { keys } from '../keys.ts';
import { checkpointsOf, type ModelResolver } from '../models.ts';
import type { RepoService } from '../repos.ts';
import { currentJob, type JobRecord, type LossSummary } from './job-records.ts';
import { jobPaths, type JobOutputs } from './job-outputs.ts';
import type { JobPipeline } from './job-pipeline.ts';
import type { ModelChain } from './model-chain.ts';
import { statusView } from './job-views.ts';

export interface DownloadUrl {
  url: string;
  expires_in: number;
  checkpoint: number;
  bake_name: string;
}

/** A bake's training job, its metrics and its checkpoints (bread-api.md §8, §11, §12). */
export class BakeJobs {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
    private readonly bakes: BakeService,
    private readonly models: ModelResolver,
    private readonly pipeline: JobPipeline,
    private readonly outputs: JobOutputs,
    private readonly chain: ModelChain,
  ) {}

  async start(actor: Actor, repo: string, bake: string): Promise<BakeResponse> {
    const item = await this.bakes.getItem(actor, repo, bake);
    const job = await this.pipeline.start({
      kind: 'bake',
      owner: { userId: actor.userId, repo, name: bake },
      ownerItem: item,
      build: (jobId, outputUri) => this.spec(actor, repo, bake, item.config as BakeConfig, jobId, outputUri),
    });
    return this.view(actor, repo, bake, item.config as BakeConfig, job);
  }

  async get(actor: Actor, repo: string, bake: string): Promise<BakeResponse> {
    return this.viewItem(actor, repo, await this.bakes.getItem(actor, repo, bake));
  }

  async viewItem(actor: Actor, repo: string, item: Item): Promise<BakeResponse> {
    return this.view(actor, repo, item.bake_name as string, item.config as BakeConfig, currentJob(item, 'bake'));
  }

  /** Deletes the bake (refused while another builds on it), stopping and removing its job. */
  async delete(actor: Actor, repo: string, bake: string): Promise<void> {
    await this.pipeline.cleanUp(await this.bakes.delete(actor, repo, bake), ['bake']);
  }

  async metrics(actor: Actor, repo: string, bake: string): Promise<Record<string, unknown>[]> {
    const job = currentJob(await this.bakes.getItem(actor, repo, bake), 'bake');
    return job ? this.outputs.metrics(job.job_id) : [];
  }

  /** A signed URL for a checkpoint's archive; the latest checkpoint unless one is named. */
  async download(actor: Actor, repo: string, bake: string, checkpoint: number | undefined, expiresIn: number): Promise<DownloadUrl> {
    return this.signedArchive(bake, checkpoint, expiresIn, () => this.bakes.getItem(actor, repo, bake));
  }

  /** The same by model name `user/repo/bake/checkpoint` (bread-api.md §12.2). */
  async downloadByName(actor: Actor, name: string, expiresIn: number): Promise<DownloadUrl> {
    const checkpoint = await this.models.locateCheckpoint(actor, name);
    return this.signedArchive(checkpoint.bake, checkpoint.step, expiresIn, async () => {
      const item = await this.store.get(keys.resource(checkpoint.userId, checkpoint.repo, 'bake', checkpoint.bake));
      if (!item) throw new NotFoundError('Checkpoint not found');
      return item;
    });
  }

  private async signedArchive(bake: string, checkpoint: number | undefined, expiresIn: number, load: () => Promise<Item>): Promise<DownloadUrl> {
    const item = await load();
    const job = currentJob(item, 'bake');
    const steps = checkpointsOf(item);
    const step = checkpoint ?? steps[0];
    if (!job || job.state !== 'complete' || step === undefined || !steps.includes(step)) throw new NotFoundError('Checkpoint not found');
    const url = await this.outputs.presignArchive(job.job_id, step, expiresIn);
    if (!url) throw new NotFoundError('Checkpoint not found');
    return { url, expires_in: expiresIn, checkpoint: step, bake_name: bake };
  }

  private async view(actor: Actor, repo: string, bake: string, config: BakeConfig, job: JobRecord | undefined): Promise<BakeResponse> {
    const status = await statusView(job, this.outputs, false);
    const complete = job?.state === 'complete';
    return {
      ...status,
      config: (job?.config as BakeConfig | undefined) ?? config,
      model_name: complete ? bakeModelNames(actor.userId, repo, bake, job.checkpoints ?? []) : null,
      loss: complete ? (job.loss ?? null) : job ? lossFromMetrics(await this.outputs.metrics(job.job_id)) : null,
    };
  }

  /** Prerequisites (bread-api.md §8.2) and the server-filled `total_trajectories` (§6.5). */
  private async spec(actor: Actor, repo: string, bake: string, config: BakeConfig, jobId: number, outputUri: string) {
    const datasets = config.datasets ?? [];
    if (datasets.length === 0) throw new InvalidInputError('Bake must have datasets configured before it can run');
    const rollouts = await Promise.all(
      datasets.map(async (dataset) => {
        const target = await this.store.get(keys.resource(actor.userId, repo, 'target', dataset.target));
        const rollout = target && currentJob(target, 'rollout');
        if (rollout?.state !== 'complete') throw new InvalidInputError('Target rollouts must complete before starting bake');
        return { dataset, rollout };
      }),
    );
    const parent = config.model?.parent_model_name ?? (await this.repos.get(actor, repo)).base_model;
    const model = await this.chain.spec(actor, parent, `Unknown parent model '${parent}'`);
    const available = rollouts.reduce((sum, { rollout }) => sum + (rollout.lines ?? 0), 0);
    const totalTrajectories = config.total_trajectories ?? available;
    if (totalTrajectories < 1) throw new InvalidInputError('Target rollouts produced no trajectories to bake');
    return {
      spec: {
        version: JOB_SPEC_VERSION,
        job_id: jobId,
        kind: 'bake' as const,
        output_uri: outputUri,
        bake: {
          config,
          datasets: rollouts.map(({ dataset, rollout }) => ({
            target: dataset.target,
            weight: dataset.weight ?? 1,
            rollout_output_uri: this.outputs.uriFor(jobPaths(rollout.job_id).output),
          })),
          total_trajectories: totalTrajectories,
          model,
          model_name_prefix: `${actor.userId}/${repo}/${bake}`,
        },
      },
      config: { ...config, total_trajectories: totalTrajectories },
    };
  }
}

/** The loss summary while a bake runs (bread-api.md §11): no final loss until it completes. */
function lossFromMetrics(rows: Record<string, unknown>[]): LossSummary | null {
  const losses = rows.map((row) => row.loss).filter((loss): loss is number => typeof loss === 'number');
  if (losses.length === 0) return null;
  return { latest_loss: losses.at(-1)!, final_loss: null, min_loss: Math.min(...losses), max_loss: Math.max(...losses) };
}

import type { Item, Store } from '../../ports/store.ts';
import type { BakeResponse, LossSummary, TargetConfig } from '../../schemas/bread.ts';
import { JOB_SPEC_VERSION } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import { bakeModelNames, templateOf, type BakeConfig, type BakeService } from '../bakes.ts';
import { InvalidInputError, NotFoundError } from '../errors.ts';
import { keys } from '../keys.ts';
import { checkpointsOf, type ModelResolver } from '../models.ts';
import type { PromptService } from '../prompts.ts';
import type { RepoService } from '../repos.ts';
import { currentJob, type JobRecord } from './job-records.ts';
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
    private readonly prompts: PromptService,
  ) {}

  async start(actor: Actor, repo: string, bake: string): Promise<BakeResponse> {
    const item = await this.bakes.getItem(actor, repo, bake);
    const job = await this.pipeline.start({
      kind: 'bake',
      owner: { userId: actor.userId, repo, name: bake },
      ownerItem: item,
      build: (jobId, outputUri) => this.spec(actor, repo, bake, item.config as BakeConfig, jobId, outputUri),
    });
    return this.view(actor, repo, item, job);
  }

  async get(actor: Actor, repo: string, bake: string): Promise<BakeResponse> {
    return this.viewItem(actor, repo, await this.bakes.getItem(actor, repo, bake));
  }

  async viewItem(actor: Actor, repo: string, item: Item): Promise<BakeResponse> {
    return this.view(actor, repo, item, currentJob(item, 'bake'));
  }

  /** Deletes the bake (refused while another builds on it), stopping and removing its job and its pipeline. */
  async delete(actor: Actor, repo: string, bake: string): Promise<void> {
    await this.pipeline.cleanUp(await this.bakes.delete(actor, repo, bake), ['bake']);
    // Last, so a refused delete keeps it; a bake made again under this name starts with none.
    await this.store.delete(keys.pipeline(actor.userId, repo, bake));
  }

  async metrics(actor: Actor, repo: string, bake: string): Promise<Record<string, unknown>[]> {
    const job = currentJob(await this.bakes.getItem(actor, repo, bake), 'bake');
    return job ? this.outputs.metrics(job.job_id) : [];
  }

  /** The bake job's engine log (job-outputs.ts); 404 before the job has written one. */
  async log(actor: Actor, repo: string, bake: string, maxBytes: number): Promise<string> {
    const job = currentJob(await this.bakes.getItem(actor, repo, bake), 'bake');
    const log = job && (await this.outputs.log(job.job_id, maxBytes));
    if (log === undefined) throw new NotFoundError(`Bake '${bake}' has no log yet; its job writes one once it starts running.`);
    return log;
  }

  /** A signed URL for a checkpoint's archive; the latest checkpoint unless one is named. */
  async download(actor: Actor, repo: string, bake: string, checkpoint: number | undefined, expiresIn: number): Promise<DownloadUrl> {
    return this.signedArchive(repo, bake, await this.bakes.getItem(actor, repo, bake), checkpoint, expiresIn);
  }

  /** The same by model name `user/repo/bake/checkpoint` (bread-api.md §12.2). */
  async downloadByName(actor: Actor, name: string, expiresIn: number): Promise<DownloadUrl> {
    const { checkpoint, bakeItem } = await this.models.locateBake(actor, name);
    return this.signedArchive(checkpoint.repo, checkpoint.bake, bakeItem, checkpoint.step, expiresIn);
  }

  private async signedArchive(repo: string, bake: string, item: Item, checkpoint: number | undefined, expiresIn: number): Promise<DownloadUrl> {
    const job = currentJob(item, 'bake');
    if (job?.state !== 'complete') throw new NotFoundError(await this.notDownloadable(repo, bake, job));
    const steps = checkpointsOf(item);
    const step = checkpoint ?? steps[0];
    if (step === undefined) throw new NotFoundError(`Bake '${bake}' completed without saving a checkpoint, so there is nothing to download`);
    if (!steps.includes(step)) throw new NotFoundError(`Checkpoint ${step} not found: bake '${bake}' saved checkpoints ${steps.join(', ')}`);
    const url = await this.outputs.presignArchive(job.job_id, step, expiresIn);
    if (!url) throw new NotFoundError('Checkpoint not found');
    return { url, expires_in: expiresIn, checkpoint: step, bake_name: bake };
  }

  /** Why a bake that has not completed has no checkpoint to download, and what to do about it. */
  private async notDownloadable(repo: string, bake: string, job: JobRecord | undefined): Promise<string> {
    const noneYet = `Bake '${bake}' has no checkpoint yet`;
    if (!job) return `${noneYet}: it has not been run; start it with POST /v1/repo/${repo}/bakes/${bake}`;
    if (job.state === 'failed') return `Bake '${bake}' failed, so it has no checkpoint to download: ${job.error ?? 'no reason was recorded'}`;
    if (job.state !== 'running') return `${noneYet}: it is queued; download it when it completes`;
    const percent = (await this.outputs.progress(job.job_id))?.percent;
    return `${noneYet}: it is running${percent === undefined ? '' : ` (${Math.floor(percent)}% done)`}; download it when it completes`;
  }

  private async view(actor: Actor, repo: string, item: Item, job: JobRecord | undefined): Promise<BakeResponse> {
    const status = await statusView(job, this.outputs, false);
    const complete = job?.state === 'complete';
    const template = templateOf(item);
    return {
      ...status,
      config: (job?.config as BakeConfig | undefined) ?? (item.config as BakeConfig),
      model_name: complete ? bakeModelNames(actor.userId, repo, item.bake_name as string, job.checkpoints ?? []) : null,
      loss: complete ? (job.loss ?? null) : job ? lossFromMetrics(await this.outputs.metrics(job.job_id)) : null,
      ...(template ? { template } : {}),
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
        if (!target || rollout?.state !== 'complete') {
          throw new InvalidInputError('Target rollouts must complete before starting bake');
        }
        const student = await this.prompts.get(actor, repo, (target.config as TargetConfig).student_prompt);
        return { dataset, rollout, studentTools: student.tools };
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
          datasets: rollouts.map(({ dataset, rollout, studentTools }) => ({
            target: dataset.target,
            weight: dataset.weight ?? 1,
            rollout_output_uri: this.outputs.uriFor(jobPaths(rollout.job_id).output),
            student_tools: studentTools,
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

/**
 * The loss summary while a bake runs or after it failed (bread-api.md §11): `final_loss` is left
 * out until the bake completes, and the engine's result.json supplies it.
 */
function lossFromMetrics(rows: Record<string, unknown>[]): LossSummary | null {
  const losses = rows.map((row) => row.loss).filter((loss): loss is number => typeof loss === 'number');
  if (losses.length === 0) return null;
  return { latest_loss: losses.at(-1)!, min_loss: Math.min(...losses), max_loss: Math.max(...losses) };
}

import type { Item } from '../../ports/store.ts';
import type { TargetConfig } from '../../schemas/bread.ts';
import { JOB_SPEC_VERSION } from '../../schemas/job-spec.ts';
import type { Actor } from '../actor.ts';
import type { DatasetService } from '../datasets.ts';
import { InvalidInputError, NotFoundError } from '../errors.ts';
import type { PromptService } from '../prompts.ts';
import type { TargetService } from '../targets.ts';
import { currentJob, type JobOwner } from './job-records.ts';
import { jobPaths, type JobOutputs } from './job-outputs.ts';
import type { JobPipeline } from './job-pipeline.ts';
import type { ModelChain } from './model-chain.ts';
import { statusView, type JobStatusView } from './job-views.ts';

export type TargetJobKind = 'stim' | 'rollout';

export interface TargetJobView extends JobStatusView {
  config: Record<string, unknown>;
  total_expected?: number | null;
}

export interface OutputPageView extends TargetJobView {
  output: Record<string, unknown>[];
  offset: number;
  limit: number;
  has_more: boolean;
}

/** Stim and rollout jobs of a target (bread-api.md §8–§10). */
export class TargetJobs {
  constructor(
    private readonly targets: TargetService,
    private readonly prompts: PromptService,
    private readonly datasets: DatasetService,
    private readonly pipeline: JobPipeline,
    private readonly outputs: JobOutputs,
    private readonly chain: ModelChain,
  ) {}

  async start(actor: Actor, repo: string, target: string, kind: TargetJobKind): Promise<TargetJobView> {
    const item = await this.targets.getItem(actor, repo, target);
    const config = item.config as TargetConfig;
    const owner: JobOwner = { userId: actor.userId, repo, name: target };
    const job = await this.pipeline.start({
      kind,
      owner,
      ownerItem: item,
      build: kind === 'stim' ? (jobId, outputUri) => this.stimSpec(actor, repo, config, jobId, outputUri) : (jobId, outputUri) => this.rolloutSpec(actor, item, jobId, outputUri),
    });
    return this.view(kind, config, job);
  }

  /** Deletes the target (refused while a bake uses it), stopping and removing its jobs. */
  async deleteTarget(actor: Actor, repo: string, target: string): Promise<void> {
    await this.pipeline.cleanUp(await this.targets.delete(actor, repo, target), ['stim', 'rollout']);
  }

  async status(actor: Actor, repo: string, target: string, kind: TargetJobKind): Promise<TargetJobView> {
    const item = await this.targets.getItem(actor, repo, target);
    return this.view(kind, item.config as TargetConfig, currentJob(item, kind));
  }

  async output(actor: Actor, repo: string, target: string, kind: TargetJobKind, offset: number, limit: number): Promise<OutputPageView> {
    const item = await this.targets.getItem(actor, repo, target);
    const job = currentJob(item, kind);
    const view = await this.view(kind, item.config as TargetConfig, job);
    const page = job ? await this.outputs.page(job.job_id, offset, limit) : { lines: [], total: 0 };
    return {
      ...view,
      lines: job ? page.total : view.lines,
      output: page.lines,
      offset,
      limit,
      has_more: offset + page.lines.length < page.total,
    };
  }

  /** The job's engine log (job-outputs.ts); 404 before the job has written one. */
  async log(actor: Actor, repo: string, target: string, kind: TargetJobKind, maxBytes: number): Promise<string> {
    const job = currentJob(await this.targets.getItem(actor, repo, target), kind);
    const log = job && (await this.outputs.log(job.job_id, maxBytes));
    if (log === undefined) throw new NotFoundError(`The ${kind} job of target '${target}' has no log yet; it writes one once it starts running.`);
    return log;
  }

  private async view(kind: TargetJobKind, config: TargetConfig, job: ReturnType<typeof currentJob>): Promise<TargetJobView> {
    const status = await statusView(job, this.outputs, true);
    if (kind === 'stim') {
      return { ...status, config: { generators: config.generators, teacher_prompt: config.teacher_prompt, student_prompt: config.student_prompt } };
    }
    return {
      ...status,
      config: rolloutConfig(config),
      total_expected: job?.total_expected ?? null,
    };
  }

  private async stimSpec(actor: Actor, repo: string, config: TargetConfig, jobId: number, outputUri: string) {
    if (config.generators.length === 0 || !config.teacher_prompt) {
      throw new InvalidInputError('Target must have generators and teacher prompt configured');
    }
    const [teacher, student, datasets] = await Promise.all([
      this.prompts.get(actor, repo, config.teacher_prompt),
      this.prompts.get(actor, repo, config.student_prompt),
      this.datasets.resolveForJob(actor, config.generators),
    ]);
    return {
      spec: {
        version: JOB_SPEC_VERSION,
        job_id: jobId,
        kind: 'stim' as const,
        output_uri: outputUri,
        stim: {
          generators: config.generators,
          teacher_prompt: { messages: teacher.messages, tools: teacher.tools },
          student_prompt: { messages: student.messages, tools: student.tools },
          templates_uri: null,
          datasets,
        },
      },
    };
  }

  private async rolloutSpec(actor: Actor, item: Item, jobId: number, outputUri: string) {
    const stim = currentJob(item, 'stim');
    if (stim?.state !== 'complete') throw new InvalidInputError('Stim job must complete before running rollout');
    const config = item.config as TargetConfig;
    if (!config.model_name) throw new InvalidInputError('model_name must be configured in target');
    const repo = stim.owner.repo;
    const [model, teacher] = await Promise.all([
      this.chain.spec(actor, config.model_name, `Unknown model '${config.model_name}'`),
      this.prompts.get(actor, repo, config.teacher_prompt),
    ]);
    const stimuli = stim.lines ?? (await this.outputs.lineCount(stim.job_id));
    return {
      spec: {
        version: JOB_SPEC_VERSION,
        job_id: jobId,
        kind: 'rollout' as const,
        output_uri: outputUri,
        rollout: {
          stim_output_uri: this.outputs.uriFor(jobPaths(stim.job_id).output),
          model,
          num_traj_per_stimulus: config.num_traj_per_stimulus,
          temperature: config.temperature,
          max_tokens: config.max_tokens ?? null,
          max_concurrency: config.max_concurrency,
          extra_kwargs: config.extra_kwargs,
          tools: teacher.tools,
          seed: typeof config.extra_kwargs?.seed === 'number' ? config.extra_kwargs.seed : 0,
        },
      },
      total_expected: stimuli * config.num_traj_per_stimulus,
    };
  }
}

/** The rollout `config` echo (bread-api.md §8.3): `extra_kwargs` only when non-empty. */
function rolloutConfig(config: TargetConfig): Record<string, unknown> {
  const echo: Record<string, unknown> = {
    model_name: config.model_name,
    num_traj_per_stimulus: config.num_traj_per_stimulus,
    temperature: config.temperature,
    max_tokens: config.max_tokens ?? null,
    max_concurrency: config.max_concurrency,
  };
  if (Object.keys(config.extra_kwargs ?? {}).length > 0) echo.extra_kwargs = config.extra_kwargs;
  return echo;
}

/**
 * The engine contract (DESIGN.md §5): what a compute job is given, and what it writes back.
 * batch/contract/job-spec.schema.json is generated from these schemas (`npm run contract`);
 * a test fails when the two drift.
 *
 * Outputs under `output_uri` (a prefix, `file://…/` or `s3://bucket/…/`):
 * - `progress.json`  — JobProgress, rewritten as the job advances
 * - `output.jsonl`   — stim or rollout lines, append-only
 * - `output.idx`     — the byte offset of each line of output.jsonl, as consecutive little-endian
 *                      uint64s, appended together with the line (so a page is two range reads)
 * - `metrics.jsonl`  — bake: one MetricsRow per logged iteration
 * - `ckpts/<step>/`  — bake: a PEFT adapter; `ckpts/<step>.tar.gz` its download archive
 * - `result.json`    — JobResult, written last; the exit code is 0 exactly when status is complete
 */
import { z } from 'zod';
import { BakeConfigBase, Generator, LossSummary, Message } from './bread.ts';

export const JOB_SPEC_VERSION = 1 as const;

const Uri = z
  .string()
  .regex(/^(file|s3):\/\/.+/, 'must be a file:// or s3:// URI')
  .meta({ description: 'A file:// or s3:// URI' });

const PrefixUri = Uri.regex(/\/$/, 'must end with /').meta({ description: 'A file:// or s3:// prefix ending in /' });

export const PromptContent = z
  .object({ messages: z.array(Message), tools: z.array(z.looseObject({})).nullable() })
  .meta({ id: 'PromptContent', description: 'A prompt as the engine sees it' });

export const ModelSpec = z
  .object({
    base_model: z.string().min(1).meta({ description: 'Catalog name of the base model, e.g. bakehouse/toy-instruct' }),
    adapters: z
      .array(
        z.object({
          model_name: z.string(),
          uri: PrefixUri,
          version: z
            .string()
            .min(1)
            .optional()
            .meta({ description: 'Changes whenever the files at `uri` are rewritten (a training checkpoint saved again under its name); caches key on it' }),
        }),
      )
      .meta({ description: 'PEFT adapters merged into the base in order, root first (sequential baking)' }),
  })
  .meta({ id: 'ModelSpec' });
export type ModelSpec = z.infer<typeof ModelSpec>;

const JobCommon = {
  version: z.literal(JOB_SPEC_VERSION),
  job_id: z.number().int().positive(),
  output_uri: PrefixUri,
};

export const StimJobSpec = z
  .object({
    ...JobCommon,
    kind: z.literal('stim'),
    stim: z.object({
      generators: z.array(Generator).min(1),
      teacher_prompt: PromptContent,
      student_prompt: PromptContent,
      /** Where `template_path` names resolve: `<templates_uri>templates/<file>` . */
      templates_uri: PrefixUri.nullable(),
      datasets: z.record(z.string(), Uri).meta({
        description:
          "What each from_dataset generator's `dataset` reads, as the API resolved it (an upload's blob, or a URI under an " +
          'operator-allowed prefix). Shipped names are not listed; the engine refuses any other dataset. Absent from specs ' +
          'written before uploads existed, which may still wait in a queue: then only shipped names are read.',
      }).optional(),
    }),
  })
  .meta({ id: 'StimJobSpec' });

export const RolloutJobSpec = z
  .object({
    ...JobCommon,
    kind: z.literal('rollout'),
    rollout: z.object({
      stim_output_uri: Uri.meta({ description: "The stim job's output.jsonl" }),
      model: ModelSpec,
      num_traj_per_stimulus: z.number().int().min(1),
      temperature: z.number().min(0).max(2),
      max_tokens: z.number().int().min(1).nullable(),
      max_concurrency: z.number().int().min(1),
      extra_kwargs: z.looseObject({}),
      tools: z.array(z.looseObject({})).nullable().meta({ description: "The teacher prompt's tools" }),
      seed: z.number().int(),
    }),
  })
  .meta({ id: 'RolloutJobSpec' });

export const BakeJobSpec = z
  .object({
    ...JobCommon,
    kind: z.literal('bake'),
    bake: z.object({
      config: BakeConfigBase.meta({ description: 'The resolved bake config (bread-api.md §6)' }),
      datasets: z
        .array(
          z.object({
            target: z.string(),
            weight: z.number().min(0),
            rollout_output_uri: Uri,
            student_tools: z.array(z.looseObject({})).nullable().optional().meta({
              description:
                "The target's student prompt's tools, rendered into the student context (stim lines carry only messages). " +
                'Absent from specs written before it existed, which may still wait in a queue: then the student context has no tools.',
            }),
          }),
        )
        .min(1),
      total_trajectories: z.number().int().min(1),
      model: ModelSpec.meta({ description: 'The starting model: the base with any parent adapters' }),
      model_name_prefix: z.string().meta({ description: 'user/repo/bake: checkpoints are named <prefix>/<step>' }),
    }),
  })
  .meta({ id: 'BakeJobSpec' });

export const SamplerJobSpec = z
  .object({
    ...JobCommon,
    kind: z.literal('sampler'),
    sampler: z.object({
      base_model: z.string().min(1).meta({ description: 'The base model loaded once and served until the sampler stops' }),
      relay_url: z.url({ protocol: /^https?$/ }).meta({ description: "The API's origin: requests are fetched from and answers posted to its relay routes" }),
      relay_token: z.string().min(32).meta({ description: "Bearer credential for this sampler's relay routes" }),
      idle_timeout_s: z.number().int().min(1).meta({ description: 'Exit (complete) after this long without a request' }),
      max_hot_adapters: z.number().int().min(1).meta({ description: 'Adapters kept loaded; the least recently used beyond this are unloaded' }),
      max_batch: z.number().int().min(1).meta({ description: 'Requests fetched and generated together at most' }),
      max_unset_tokens: z.number().int().min(1).meta({ description: "A request without max_tokens generates up to the model's remaining context, at most this many tokens" }),
    }),
  })
  .meta({ id: 'SamplerJobSpec' });

export const TrainerJobSpec = z
  .object({
    ...JobCommon,
    kind: z.literal('trainer'),
    trainer: z.object({
      run_id: z.string().min(1),
      model: ModelSpec.meta({ description: 'The base the LoRA adapter trains on: a base model, or a baked checkpoint (its adapter chain merged in)' }),
      lora_rank: z.number().int().min(1).max(512),
      seed: z.number().int().nullable().meta({ description: 'Seeds adapter initialisation; unset: random' }),
      max_seq_len: z.number().int().min(1).nullable().meta({ description: 'Longest model_input accepted; unset: the model context' }),
      relay_url: z.url({ protocol: /^https?$/ }).meta({ description: "The API's origin: operations are fetched from and results posted to its relay routes" }),
      relay_token: z.string().min(32).meta({ description: "Bearer credential for this trainer's relay routes" }),
      idle_timeout_s: z.number().int().min(1).meta({ description: "Autosave to state_uri and exit (complete) after this long without an operation: the run's scale_down_delay_seconds" }),
      state_uri: PrefixUri.meta({ description: "The run's autosave: restored before `ready` when present, written before an idle exit" }),
    }),
  })
  .meta({ id: 'TrainerJobSpec', description: 'A long-running trainer serving one training run (functions/schemas/trainer.ts)' });

export const JobSpec = z.discriminatedUnion('kind', [StimJobSpec, RolloutJobSpec, BakeJobSpec, SamplerJobSpec, TrainerJobSpec]).meta({
  id: 'JobSpec',
  title: 'Bakehouse engine job spec',
});
export type JobSpec = z.infer<typeof JobSpec>;
export type JobKind = JobSpec['kind'];

export const JobProgress = z
  .object({ percent: z.number().min(0).max(100), lines: z.number().int().min(0), updated_at: z.string() })
  .meta({ id: 'JobProgress' });
export type JobProgress = z.infer<typeof JobProgress>;

export const MetricsRow = z
  .looseObject({
    iter: z.number().int(),
    loss: z.number(),
    train_loss: z.number().optional(),
    lr: z.number().optional(),
    epoch: z.number().optional(),
    seqlen: z.number().optional(),
    iter_time: z.number().optional(),
    step_time: z.number().optional(),
    tokens_per_s: z.number().optional(),
    iter_tflops: z.number().optional(),
    step_tflops: z.number().optional(),
  })
  .meta({ id: 'MetricsRow' });

export const JobResult = z
  .object({
    status: z.enum(['complete', 'failed']),
    error: z.string().nullable().meta({ description: 'When failed: a sentence the user can act on' }),
    lines: z.number().int().min(0).optional(),
    checkpoints: z.array(z.number().int().min(0)).optional().meta({ description: 'Bake: saved steps' }),
    loss: LossSummary.nullable().optional().meta({ description: 'Bake: the loss summary over metrics.jsonl, final_loss included' }),
    unhonoured_config: z
      .array(z.string())
      .optional()
      .meta({ description: 'Config fields accepted but not applied on this hardware, each with the reason' }),
    applied_config: z
      .array(z.string())
      .optional()
      .meta({
        description:
          'Bake: how the deepspeed block and activation offload were applied (FSDP sharding, CPU offload) and what the memory plan changed to fit, one sentence each',
      }),
  })
  .meta({ id: 'JobResult' });
export type JobResult = z.infer<typeof JobResult>;

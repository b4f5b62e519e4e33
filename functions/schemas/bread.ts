/**
 * Bread API shapes (shared/spec/bread-api.md). The single source for validation, the OpenAPI
 * document and the types the services work with. Plain zod with `.meta`, so the domain can use
 * these types without depending on the HTTP framework.
 *
 * Request objects are loose: real clients send keys this spec does not list (§1.8), and keys
 * inside `overrides` are kept and echoed.
 */
import { z } from 'zod';
import { nameSchema } from './names.ts';

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

// ── Errors ────────────────────────────────────────────────────────────────────────────────────

export const ErrorResponse = z
  .object({
    message: z.string(),
    code: z.string().nullable(),
    detail: z.array(z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() })).optional(),
  })
  .meta({ id: 'ErrorResponse' });

export const DeleteResponse = z.object({ message: z.string() }).meta({ id: 'DeleteResponse' });

// ── Repos ─────────────────────────────────────────────────────────────────────────────────────

export const RepoCreate = z
  .looseObject({ repo_name: nameSchema('repo'), base_model: nullish(z.string().min(1)) })
  .meta({ id: 'RepoCreate' });
export type RepoCreate = z.infer<typeof RepoCreate>;

export const RepoResponse = z.object({ repo_name: z.string(), base_model: z.string() }).meta({ id: 'RepoResponse' });
export type RepoResponse = z.infer<typeof RepoResponse>;

export const RepoList = z.object({ repos: z.array(z.string()) }).meta({ id: 'RepoList' });
export const PaginatedRepoList = z
  .object({
    repos: z.array(RepoResponse),
    offset: z.number().int(),
    limit: z.number().int(),
    has_more: z.boolean(),
    total: z.number().int().nullish(),
  })
  .meta({ id: 'PaginatedRepoList' });

const queryBool = z
  .enum(['true', 'false', '1', '0'])
  .transform((value) => value === 'true' || value === '1');

export const RepoListQuery = z.object({
  include_metadata: queryBool.optional(),
  offset: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).optional(),
});

// ── Prompts ───────────────────────────────────────────────────────────────────────────────────

export const Message = z
  .looseObject({
    role: z.string(),
    content: z.union([z.string(), z.array(z.unknown()), z.looseObject({})]).nullish(),
  })
  .meta({ id: 'Message' });
export type Message = z.infer<typeof Message>;

const Tools = z.array(z.looseObject({})).nullish();

export const PromptCreate = z
  .looseObject({ prompt_name: nameSchema('prompt'), messages: z.array(Message), tools: Tools })
  .meta({ id: 'PromptCreate' });
export const PromptSet = z.looseObject({ messages: z.array(Message), tools: Tools }).meta({ id: 'PromptSet' });
export type PromptContent = z.infer<typeof PromptSet>;

/** Entries one batch call may create: a call's work stays bounded, however large the body. */
export const MAX_BATCH_ENTRIES = 1000;

/**
 * A batch's entries (a list, or a map by name), refused past MAX_BATCH_ENTRIES before any entry
 * is checked, so that an oversized batch costs its parse and not its validation.
 */
function batchEntries<T extends z.ZodArray | z.ZodRecord>(entries: T) {
  const limit = entries instanceof z.ZodArray ? { maxItems: MAX_BATCH_ENTRIES } : { maxProperties: MAX_BATCH_ENTRIES };
  return z
    .preprocess((value, ctx) => {
      const count = Array.isArray(value) ? value.length : typeof value === 'object' && value !== null ? Object.keys(value).length : 0;
      if (count > MAX_BATCH_ENTRIES) {
        ctx.addIssue({ code: 'custom', message: `A batch may create at most ${MAX_BATCH_ENTRIES} entries; split it into several calls` });
      }
      return value;
    }, entries)
    .meta(limit);
}

/**
 * Entries are checked one by one (bad names and bad messages go to `failed`), so the map's keys
 * are plain strings and its values any list; each list is checked as `Message[]` on its own.
 */
export const BatchPromptSet = z
  .looseObject({
    prompts: batchEntries(z.record(z.string(), z.array(z.looseObject({})).meta({ description: 'Message[]' }))),
  })
  .meta({ id: 'BatchPromptSet' });

export const PromptResponse = z
  .object({ prompt_name: z.string(), messages: z.array(Message), tools: z.array(z.looseObject({})).nullish() })
  .meta({ id: 'PromptResponse' });
export const PromptList = z.object({ prompts: z.array(z.string()) }).meta({ id: 'PromptList' });

export const BatchResponse = z
  .object({ created: z.array(z.string()), failed: z.record(z.string(), z.string()) })
  .meta({ id: 'BatchResponse' });
export type BatchResponse = z.infer<typeof BatchResponse>;

// ── Targets ───────────────────────────────────────────────────────────────────────────────────

export const GENERATOR_TYPES = ['oneshot_qs', 'hardcoded', 'persona', 'from_dataset', 'custom'] as const;

/** bread-api.md §5.5: 1 MB of UTF-8. */
export const TEMPLATE_CONTENT_MAX_BYTES = 1024 * 1024;

export const Generator = z
  .looseObject({
    type: z.enum(GENERATOR_TYPES),
    model: nullish(z.string()),
    numq: nullish(z.number().int().min(1)),
    temperature: nullish(z.number().min(0).max(2)),
    max_tokens: nullish(z.number().int().min(1)),
    dataset: nullish(z.string()),
    questions: nullish(z.array(z.string())),
    template_path: nullish(z.string()),
    template_content: nullish(
      z
        .string()
        .refine((text) => Buffer.byteLength(text, 'utf8') <= TEMPLATE_CONTENT_MAX_BYTES, 'template_content must be at most 1 MB')
        .refine((text) => text.includes('${numq}') && text.includes('${prompt_u}'), 'template_content must contain ${numq} and ${prompt_u}'),
    ),
    seed: nullish(z.number().int()),
    rollout_with_conditioned: nullish(z.boolean()),
  })
  .meta({ id: 'Generator' });
export type Generator = z.infer<typeof Generator>;

export const TargetConfigBase = z
  .looseObject({
    teacher_prompt: nullish(nameSchema('prompt')),
    student_prompt: nullish(nameSchema('prompt')),
    u: nullish(nameSchema('prompt')).meta({ deprecated: true, description: 'Deprecated alias of teacher_prompt' }),
    v: nullish(nameSchema('prompt')).meta({ deprecated: true, description: 'Deprecated alias of student_prompt' }),
    generators: nullish(z.array(Generator)),
    model_name: nullish(z.string().min(1)),
    num_traj_per_stimulus: nullish(z.number().int().min(1)),
    max_concurrency: nullish(z.number().int().min(1)),
    temperature: nullish(z.number().min(0).max(2)),
    max_tokens: nullish(z.number().int().min(1)),
    extra_kwargs: nullish(z.looseObject({})),
  })
  .meta({ id: 'TargetConfigBase' });
export type TargetConfigBase = z.infer<typeof TargetConfigBase>;

export const TargetConfigOutput = z
  .looseObject({
    teacher_prompt: z.string(),
    student_prompt: z.string(),
    generators: z.array(Generator),
    model_name: z.string(),
    num_traj_per_stimulus: z.number().int(),
    max_concurrency: z.number().int(),
    temperature: z.number(),
    max_tokens: z.number().int().nullish(),
    extra_kwargs: z.looseObject({}),
  })
  .meta({ id: 'TargetConfigOutput' });
export type TargetConfig = z.infer<typeof TargetConfigOutput>;

const templateName = z.string().min(1);

/** Provenance on responses; absent for resources stored before it was recorded. */
const templateOrigin = (kind: 'target' | 'bake') =>
  z.string().optional().meta({
    description: `The template this ${kind} was made from: "default" or the name of another ${kind} in the repo. Absent when unknown.`,
  });

export const TargetConfig = z
  .looseObject({ template: templateName, overrides: TargetConfigBase.nullish() })
  .meta({ id: 'TargetConfig' });
export type TargetDefinition = z.infer<typeof TargetConfig>;
export const TargetCreate = TargetConfig.extend({ target_name: nameSchema('target') }).meta({ id: 'TargetCreate' });

/** Batch entries are validated one by one so that a bad entry lands in `failed`, not a 422. */
export const BatchTargetCreate = z
  .looseObject({ targets: batchEntries(z.array(z.looseObject({ target_name: z.string() }))) })
  .meta({ id: 'BatchTargetCreate' });

export const TargetResponse = z
  .object({ target_name: z.string(), config: TargetConfigOutput, template: templateOrigin('target') })
  .meta({ id: 'TargetResponse' });
export const TargetList = z.object({ targets: z.array(z.string()) }).meta({ id: 'TargetList' });

// ── Bakes ─────────────────────────────────────────────────────────────────────────────────────

export const DatasetItem = z
  .looseObject({ target: nameSchema('target'), weight: nullish(z.number().min(0, 'weight must not be negative')) })
  .meta({ id: 'DatasetItem' });

const LoRAAdapterConfig = z
  .looseObject({
    r: nullish(z.number().int().min(1)),
    lora_alpha: nullish(z.number()),
    target_modules: nullish(z.union([z.string(), z.array(z.string())])),
    lora_dropout: nullish(z.number().min(0).max(1)),
    bias: nullish(z.string()),
  })
  .meta({ id: 'LoRAAdapterConfig' });

const ModelConfig = z
  .looseObject({
    type: nullish(z.string()),
    parent_model_name: nullish(z.string().min(1)),
    baked_adapter_config: nullish(LoRAAdapterConfig),
    dtype: nullish(z.enum(['bf16', 'fp16', 'fp32'])),
    save_name: nullish(z.string()),
    attn_implementation: nullish(z.string()),
    disable_activation_checkpoint: nullish(z.boolean()),
    peft_config: nullish(z.looseObject({})),
    student_model_path: nullish(z.string()),
  })
  .meta({ id: 'ModelConfig' });

const DataSource = z.looseObject({
  type: nullish(z.string()),
  name_or_path: nullish(z.string()),
  split: nullish(z.string()),
  max_samples: nullish(z.number().int()),
  sample_ratio: nullish(z.number()),
  sample_count: nullish(z.number().int()),
  sample_seed: nullish(z.number().int()),
  process: nullish(z.boolean()),
});

const DataConfig = z
  .looseObject({
    type: nullish(z.string()),
    sources: nullish(z.array(DataSource)),
    eval_sources: nullish(z.array(DataSource)),
    beta: nullish(z.number()),
    temperature: nullish(z.number().positive()),
    max_length: nullish(z.number().int().min(1)),
    train_eval_split: nullish(z.tuple([z.number(), z.number()])),
    cache_dir: nullish(z.string()),
    dl_num_workers: nullish(z.number().int().min(0)),
    num_proc: nullish(z.number().int().min(1)),
    seed: nullish(z.number().int()),
    use_data_cache: nullish(z.boolean()),
    cache_fs_type: nullish(z.enum(['auto', 'local', 'shared'])),
  })
  .meta({ id: 'DataConfig' });

const CheckpointConfig = z
  .looseObject({
    type: nullish(z.string()),
    output_dir: nullish(z.string()),
    enabled: nullish(z.boolean()),
    auto_resume: nullish(z.boolean()),
    save_every_n_steps: nullish(z.number().int().min(0)),
    save_every_n_epochs: nullish(z.number().int().min(0)),
    save_end_of_training: nullish(z.boolean()),
  })
  .meta({ id: 'CheckpointConfig' });

export const BakeConfigBase = z
  .looseObject({
    datasets: nullish(z.array(DatasetItem)),
    total_trajectories: nullish(z.number().int().min(1)),
    seed: nullish(z.number().int()),
    type: nullish(z.string()),
    model_name: nullish(z.string()),
    micro_batch_size: nullish(z.number().int().min(1)),
    gradient_accumulation_steps: nullish(z.number().int().min(1)),
    epochs: nullish(z.number().int().min(1)),
    model: nullish(ModelConfig),
    data: nullish(DataConfig),
    optimizer: nullish(
      z.looseObject({
        type: nullish(z.string()),
        learning_rate: nullish(z.number().positive()),
        weight_decay: nullish(z.number().min(0)),
        betas: nullish(z.tuple([z.number(), z.number()])),
      }),
    ),
    scheduler: nullish(
      z.looseObject({
        type: nullish(z.string()),
        lr: z
          .unknown()
          .refine((lr) => lr === null || lr === undefined, 'scheduler.lr is deprecated and must not be set; use optimizer.learning_rate')
          .optional()
          .meta({ deprecated: true, description: 'Deprecated; setting it is an error' }),
      }),
    ),
    wandb: nullish(
      z.looseObject({ enable: nullish(z.boolean()), project: nullish(z.string()), name: nullish(z.string()), entity: nullish(z.string()) }),
    ),
    deepspeed: nullish(
      z.looseObject({ zero_optimization: nullish(z.looseObject({ stage: nullish(z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)])) })) }),
    ),
    checkpoint: nullish(z.array(CheckpointConfig)),
    train_log_iter_interval: nullish(z.number().int().min(1)),
    eval_interval: nullish(z.number().int().min(0)),
    activation_checkpoint_cpu_offload: nullish(z.boolean()),
  })
  .meta({ id: 'BakeConfigBase' });
export type BakeConfigBase = z.infer<typeof BakeConfigBase>;

export const BakeConfig = z
  .looseObject({ template: templateName, overrides: BakeConfigBase.nullish() })
  .meta({ id: 'BakeConfig' });
export type BakeDefinition = z.infer<typeof BakeConfig>;
export const BakeCreate = BakeConfig.extend({ bake_name: nameSchema('bake') }).meta({ id: 'BakeCreate' });
export const BatchBakeCreate = z
  .looseObject({ bakes: batchEntries(z.array(z.looseObject({ bake_name: z.string() }))) })
  .meta({ id: 'BatchBakeCreate' });
export const BakeList = z.object({ bakes: z.array(z.string()) }).meta({ id: 'BakeList' });

// ── Job status (§8.3) and bake results (§11) ─────────────────────────────────────────────────

export const JOB_STATUSES = ['not_started', 'running', 'complete', 'failed'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const JobStatusFields = {
  status: z.enum(JOB_STATUSES),
  lines: z.number().int().nullable(),
  config: z.looseObject({}).nullable(),
  error: z.string().nullable(),
  job_id: z.number().int().nullable(),
  progress_percent: z.number().nullable(),
};

export const StimResponse = z.object(JobStatusFields).meta({ id: 'StimResponse' });
export const RolloutResponse = z
  .object({ ...JobStatusFields, total_expected: z.number().int().nullish() })
  .meta({ id: 'RolloutResponse' });

const OutputPage = {
  output: z.array(z.looseObject({})),
  offset: z.number().int(),
  limit: z.number().int(),
  has_more: z.boolean(),
};
export const StimOutputResponse = StimResponse.extend(OutputPage).meta({ id: 'StimOutputResponse' });
export const RolloutOutputResponse = RolloutResponse.extend(OutputPage).meta({ id: 'RolloutOutputResponse' });

export const OutputQuery = z.object({
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/**
 * A key with no value yet is left out rather than null: the official Python client types `loss`
 * as a map of numbers and rejects a null inside it under strict response validation.
 */
export const LossSummary = z
  .object({
    latest_loss: z.number(),
    final_loss: z.number().optional().meta({ description: 'Present once the bake is complete: the last logged loss' }),
    min_loss: z.number(),
    max_loss: z.number(),
  })
  .meta({ id: 'LossSummary' });
export type LossSummary = z.infer<typeof LossSummary>;

export const BakeResponse = z
  .object({
    ...JobStatusFields,
    model_name: z.array(z.string()).nullable(),
    loss: LossSummary.nullable(),
    template: templateOrigin('bake'),
  })
  .meta({ id: 'BakeResponse' });
export type BakeResponse = z.infer<typeof BakeResponse>;

// ── Recipes and lineage (§13) ─────────────────────────────────────────────────────────────────

// Four strings, written as a fixed-length array rather than a tuple: OpenAPI 3.1 spells a tuple
// `prefixItems`, which schema-driven tools that read Draft 4 `items: [...]` mishandle.
const Edge = z
  .array(z.string())
  .length(4)
  .meta({ description: '[source_type, source_name, target_type, target_name]' });

export const DependencyGraph = z
  .object({
    base_model: z.string(),
    bakes: z.record(z.string(), z.looseObject({})),
    targets: z.record(z.string(), z.looseObject({})),
    prompts: z.record(z.string(), z.string().nullable()),
    edges: z.array(Edge),
  })
  .meta({ id: 'DependencyGraph' });
export type DependencyGraph = z.infer<typeof DependencyGraph>;

export const RECREATION_ACTIONS = ['create_prompt', 'create_target', 'run_stim', 'run_rollout', 'create_bake', 'run_bake'] as const;

export const RecreationPlanStep = z
  .object({
    step: z.number().int(),
    action: z.enum(RECREATION_ACTIONS),
    resource_type: z.enum(['prompt', 'target', 'bake']),
    resource_name: z.string(),
    dependencies: z.array(z.string()),
    config: z.looseObject({}),
  })
  .meta({ id: 'RecreationPlanStep' });
export type RecreationPlanStep = z.infer<typeof RecreationPlanStep>;

export const RecreationPlan = z
  .object({
    base_model: z.string(),
    total_steps: z.number().int(),
    steps: z.array(RecreationPlanStep),
    resources: z.object({
      prompts: z.array(z.string()),
      targets: z.array(z.string()),
      bakes: z.array(z.object({ bake_name: z.string(), model_names: z.array(z.string()).optional() })),
    }),
  })
  .meta({ id: 'RecreationPlan' });
export type RecreationPlan = z.infer<typeof RecreationPlan>;

export const TREE_STATUSES = ['complete', 'failed', 'running', 'pending', 'unknown'] as const;

export const RepoTree = z
  .object({
    base_model: z.string(),
    bakes: z.record(
      z.string(),
      z.object({
        status: z.enum(TREE_STATUSES),
        config: z.looseObject({}),
        model_name: z.array(z.string()).optional(),
        checkpoints: z.array(z.number().int()).optional(),
      }),
    ),
    edges: z.array(Edge),
  })
  .meta({ id: 'RepoTree' });
export type RepoTree = z.infer<typeof RepoTree>;

// ── Health and downloads ──────────────────────────────────────────────────────────────────────

export const HealthResponse = z
  .object({ status: z.enum(['healthy', 'degraded']), api: z.string(), version: z.string() })
  .meta({ id: 'HealthResponse' });

export const EXPIRES_IN_MAX = 604_800;

export const DownloadUrlResponse = z
  .object({ url: z.string(), expires_in: z.number().int(), checkpoint: z.number().int(), bake_name: z.string() })
  .meta({ id: 'DownloadUrlResponse' });

const ExpiresIn = z.coerce.number().int().min(1).max(EXPIRES_IN_MAX).default(3600);

export const BakeDownloadQuery = z.object({
  checkpoint: z.coerce.number().int().min(0).optional(),
  expires_in: ExpiresIn,
});

export const MetricsRows = z.array(z.looseObject({ iter: z.number().int(), loss: z.number() })).meta({ id: 'MetricsRows' });

export const ModelDownloadQuery = z.object({
  name: z.string().regex(/^[^/]+\/[^/]+\/[^/]+\/\d+$/, 'name must be user/repo/bake_name/checkpoint'),
  expires_in: ExpiresIn,
});

/**
 * The Loops wire (loops-api.md Part 1, loops-data-plane.md): the control plane's bodies, which the
 * OpenAPI document shows, and the data plane's, which the `baseten-loops` SDK sends to
 * `run.base_url` and `sampler.base_url`. Field names, defaults and nullability are the SDK's:
 * it validates the control plane's answers, so a field it requires is never null here.
 */
import { z } from '@hono/zod-openapi';
import { adamParams } from './adam-params.ts';

// ── Shared ────────────────────────────────────────────────────────────────────────────────────

/**
 * Every Loops error (loops-data-plane.md §3.4): the SDK shows `error`; `details.reason` is the
 * machine code. 4xx answers the server originates also carry `X-Baseten-Error-Source: 06` and
 * `X-Baseten-Error-Code: <reason>`, so the SDK raises them at once rather than retrying.
 */
export const LoopsError = z
  .object({
    error: z.string().meta({ description: 'A sentence saying what is wrong and what to do' }),
    details: z.object({
      reason: z.string().meta({ description: 'invalid_request, unauthorized, not_found, run_inactive, idempotency_conflict, payload_too_large, …' }),
    }),
  })
  .meta({ id: 'LoopsError' });
export type LoopsError = z.infer<typeof LoopsError>;

const Timestamp = z.string().meta({ description: 'ISO-8601' });
const optional = <T extends z.ZodType>(schema: T) => schema.nullish();

/** Who owns a resource. Keys map to users, which have no email here. */
export const LoopsUser = z.object({ id: z.string(), email: z.string().nullable() }).meta({ id: 'LoopsUser' });

export const AvailabilityModel = z.enum(['dedicated', 'spot']);

// ── Sessions and teams ────────────────────────────────────────────────────────────────────────

export const CreateLoopsSessionRequest = z
  .looseObject({ training_project_id: optional(z.string().min(1)) })
  .meta({ id: 'CreateLoopsSessionRequestV1' });

export const LoopsSession = z
  .object({ id: z.string(), training_project_id: z.string().nullable(), created_at: Timestamp })
  .meta({ id: 'LoopsSessionV1' });
export const LoopsSessionResponse = z.object({ session: LoopsSession }).meta({ id: 'LoopsSessionResponse' });

export const Team = z.object({ id: z.string(), name: z.string() }).meta({ id: 'Team' });
export const TeamList = z.object({ teams: z.array(Team) }).meta({ id: 'TeamList' });

// ── Samplers ──────────────────────────────────────────────────────────────────────────────────

export const DeploymentStatusName = z.enum([
  'BUILDING',
  'DEPLOYING',
  'DEPLOY_FAILED',
  'LOADING_MODEL',
  'ACTIVE',
  'UNHEALTHY',
  'BUILD_FAILED',
  'BUILD_STOPPED',
  'DEACTIVATING',
  'INACTIVE',
  'FAILED',
  'UPDATING',
  'SCALED_TO_ZERO',
  'WAKING_UP',
]);

export const CreateLoopsSamplerRequest = z
  .looseObject({
    session_id: z.string().min(1),
    run_id: optional(z.string().min(1)).meta({ description: 'Pair with this run (idempotent per run); the sampler serves its base model and adapters' }),
    base_model: optional(z.string().min(1)).meta({ description: 'A standalone sampler of this base model' }),
    model_path: optional(z.string().min(1)).meta({ description: 'A standalone sampler of this bt://loops:<run>/sampler_weights/<name> adapter' }),
    max_seq_length: optional(z.number().int().min(1)),
    num_replicas: optional(z.number().int().min(1).max(1, 'must be 1: samplers have one replica')),
    availability_model: optional(AvailabilityModel),
    reuse_from_session_id: optional(z.string()),
    debug_version: optional(z.string()).meta({ description: 'Internal; ignored' }),
    scope: optional(z.string()).meta({ description: 'Internal; ignored' }),
  })
  .meta({ id: 'CreateLoopsSamplerRequestV1' });
export type CreateLoopsSamplerRequest = z.infer<typeof CreateLoopsSamplerRequest>;

export const LoopsSampler = z
  .object({
    id: z.string(),
    base_url: z.string().meta({ description: '{data plane origin}/loops/samplers/{id}' }),
    base_model: z.string(),
    created_at: Timestamp,
    model_id: z.null().meta({ description: 'Always null: the serverless sampler (202 and polling)' }),
    deployment_id: z.null().meta({ description: 'Always null' }),
    status: z.object({ name: DeploymentStatusName }),
    user: LoopsUser,
    node_count: z.number().int(),
    base_checkpoint: z.string().nullable(),
    run_id: z.string().nullable().meta({ description: 'The run a paired sampler belongs to' }),
    model_path: z.string().nullable().meta({ description: 'The adapter a standalone sampler serves by default' }),
  })
  .meta({ id: 'LoopsSamplerV1' });
export type LoopsSampler = z.infer<typeof LoopsSampler>;
export const LoopsSamplerResponse = z.object({ sampler: LoopsSampler }).meta({ id: 'LoopsSamplerResponse' });
export const LoopsSamplerList = z.object({ samplers: z.array(LoopsSampler) }).meta({ id: 'LoopsSamplerList' });

// ── Runs and trainers ─────────────────────────────────────────────────────────────────────────

export const CreateLoopsRunRequest = z
  .looseObject({
    session_id: z.string().min(1),
    base_model: z.string().min(1).meta({ description: 'A model from /v1/loops/capabilities; echoed unchanged' }),
    name: optional(z.string().min(1)).meta({ description: 'Defaults to the base model' }),
    max_seq_len: optional(z.number().int().min(1)),
    lora_rank: z.number().int().min(1).default(64),
    seed: optional(z.number().int()),
    scale_down_delay_seconds: z.number().int().min(1).max(3600).default(3600).meta({ description: 'Idle seconds before the trainer scales to zero' }),
    availability_model: AvailabilityModel.default('dedicated'),
    replicas: z.number().int().min(1).max(1, 'must be 1: data-parallel trainers are not supported').default(1),
    path: optional(z.string().min(1)).meta({ description: 'bt://loops:<run>/weights/<name>: start from saved training state' }),
    base_checkpoint: optional(z.string()).meta({ description: 'Not supported: a request that sets it is refused' }),
    reuse_from_run_id: optional(z.string()).meta({ description: 'Accepted and ignored' }),
    reuse_from_session_id: optional(z.string()).meta({ description: 'Accepted and ignored (deprecated)' }),
    debug_version: optional(z.string()).meta({ description: 'Internal; ignored' }),
    scope: optional(z.string()).meta({ description: 'Internal; ignored' }),
  })
  .meta({ id: 'CreateLoopsRunRequestV1' });
export type CreateLoopsRunRequest = z.infer<typeof CreateLoopsRunRequest>;

export const LoopsRun = z
  .object({
    id: z.string(),
    session_id: z.string(),
    deployment_id: z.null().meta({ description: 'Always null: the serverless trainer path' }),
    name: z.string(),
    base_model: z.string(),
    base_url: z.string().meta({ description: '{data plane origin}/loops/trainers/{id}' }),
    created_at: Timestamp,
    status: z.object({ name: z.enum(['ACTIVE', 'INACTIVE']) }),
    user: LoopsUser,
    base_checkpoint: z.string().nullable(),
    lora_rank: z.number().int(),
    availability_model: AvailabilityModel,
    scale_down_delay_seconds: z.number().int(),
    sampler: LoopsSampler.nullable().meta({ description: 'The paired sampler; null until one is created' }),
  })
  .meta({ id: 'LoopsRunV1' });
export type LoopsRun = z.infer<typeof LoopsRun>;
export const LoopsRunResponse = z.object({ run: LoopsRun }).meta({ id: 'LoopsRunResponse' });
export const LoopsRunList = z.object({ runs: z.array(LoopsRun) }).meta({ id: 'LoopsRunList' });
export const LoopsRunListQuery = z.object({
  run_id: z.string().min(1).optional(),
  base_model: z.string().min(1).optional(),
  scope: z.string().optional().meta({ description: 'Accepted; lists are always the caller’s own' }),
});

export const DeactivatedRun = z
  .object({ id: z.string(), base_model: z.string(), user: LoopsUser })
  .meta({ id: 'DeactivatedRun' });

// ── Checkpoints ───────────────────────────────────────────────────────────────────────────────

export const LoraAdapterConfig = z
  .looseObject({ r: z.number().int(), lora_alpha: z.number(), target_modules: z.array(z.string()) })
  .meta({ id: 'LoraAdapterConfig' });

export const LoopsCheckpoint = z
  .object({
    id: z.string().meta({ description: 'Database id, for /files and /source' }),
    run_id: z.string(),
    target: z.enum(['sampler', 'trainer']),
    checkpoint_id: z.string().meta({ description: 'The saved name' }),
    created_at: Timestamp,
    checkpoint_type: z.literal('lora'),
    base_model: z.string(),
    lora_adapter_config: LoraAdapterConfig,
    size_bytes: z.number().int(),
    sync_status: z.literal('COMPLETE'),
  })
  .meta({ id: 'LoopsCheckpointV1' });
export type LoopsCheckpoint = z.infer<typeof LoopsCheckpoint>;
export const LoopsCheckpointList = z.object({ checkpoints: z.array(LoopsCheckpoint) }).meta({ id: 'LoopsCheckpointList' });
export const LoopsCheckpointListQuery = z.object({
  run_id: z.string().min(1).optional(),
  base_model: z.string().min(1).optional(),
  checkpoint_path: z.string().min(1).optional(),
});

export const CheckpointFilesQuery = z.object({
  page_size: z.coerce.number().int().min(1).max(1000).default(1000),
  page_token: z.coerce.number().int().min(0).default(0).meta({ description: 'Numeric offset of the first file' }),
});

export const CheckpointFilesResponse = z
  .object({
    presigned_urls: z.array(
      z.object({
        url: z.string(),
        relative_file_name: z.string(),
        node_rank: z.number().int(),
        size_bytes: z.number().int(),
        last_modified: Timestamp,
      }),
    ),
    next_page_token: z.number().int().nullable().meta({ description: 'Offset of the next page; null at the end' }),
    total_count: z.number().int(),
  })
  .meta({ id: 'CheckpointFilesResponse' });

export const CheckpointSource = z.object({ source: z.object({ kind: z.literal('s3') }) }).meta({ id: 'CheckpointSource' });

export const ValidateCheckpointRequest = z
  .looseObject({ checkpoint_path: z.string().min(1), run_id: optional(z.string().min(1)) })
  .meta({ id: 'ValidateCheckpointRequest' });

export const EmptyObject = z.object({}).meta({ id: 'EmptyObject' });

// ── Deployments and capabilities ──────────────────────────────────────────────────────────────

export const LoopsDeployment = z
  .object({
    id: z.string().meta({ description: 'The run id: a deployment is the run and its sampler' }),
    active_run_id: z.string().nullable(),
    latest_run_id: z.string(),
    base_model: z.string(),
    base_url: z.string(),
    status: z.object({ name: z.enum(['CREATED', 'DEPLOYING', 'RUNNING', 'SCALED_TO_ZERO', 'FAILED', 'STOPPED', 'PREEMPTED']) }),
    user: LoopsUser,
    created_at: Timestamp,
    availability_model: AvailabilityModel,
    instance_type: z.object({
      id: z.string(),
      name: z.string(),
      memory_limit_mib: z.number().nullable(),
      millicpu_limit: z.number().nullable(),
      gpu_count: z.number().int(),
      gpu_type: z.string().nullable(),
      gpu_memory_limit_mib: z.number().nullable(),
    }),
    node_count: z.number().int(),
    sampler: LoopsSampler.nullable(),
  })
  .meta({ id: 'LoopsDeploymentV1' });
export type LoopsDeployment = z.infer<typeof LoopsDeployment>;
export const LoopsDeploymentResponse = z.object({ deployment: LoopsDeployment }).meta({ id: 'LoopsDeploymentResponse' });
export const LoopsDeploymentList = z.object({ deployments: z.array(LoopsDeployment) }).meta({ id: 'LoopsDeploymentList' });

export const LoopsCapabilities = z
  .object({
    supported_models: z.array(z.object({ model_name: z.string(), supports_vision_language: z.boolean() })),
  })
  .meta({ id: 'LoopsCapabilities' });

// ── Legacy trainer-session routes (loops-api.md §1.8) ─────────────────────────────────────────

export const LegacyTrainerRequest = z
  .looseObject({
    model: z.string().min(1),
    max_seq_len: optional(z.number().int().min(1)),
    lora_rank: z.number().int().min(1).default(64),
    seed: optional(z.number().int()),
    scale_down_delay_seconds: z.number().int().min(1).max(3600).default(3600),
    checkpoint_path: optional(z.string().min(1)),
  })
  .meta({ id: 'LegacyTrainerRequest' });

export const LegacySamplerRequest = z
  .looseObject({ model: z.string().min(1), max_seq_length: optional(z.number().int().min(1)), checkpoint_path: optional(z.string().min(1)) })
  .meta({ id: 'LegacySamplerRequest' });

export const SamplingServer = z
  .object({ id: z.string(), base_url: z.string(), model_id: z.null(), deployment_id: z.null() })
  .meta({ id: 'SamplingServer' });
export const LegacyTrainerResponse = z
  .object({ trainer_server: z.object({ id: z.string(), base_url: z.string(), sampling_server: SamplingServer }) })
  .meta({ id: 'LegacyTrainerResponse' });
export const LegacySamplerResponse = z.object({ sampling_server: SamplingServer }).meta({ id: 'LegacySamplerResponse' });
export const LegacyCheckpointList = z
  .object({ trainer_id: z.string(), checkpoints: z.array(LoopsCheckpoint) })
  .meta({ id: 'LegacyCheckpointList' });
export const TrainerSearchRequest = z.looseObject({ trainer_id: optional(z.string().min(1)) }).meta({ id: 'TrainerSearchRequest' });
export const TrainerSearchResponse = z.object({ trainers: z.array(LoopsRun) }).meta({ id: 'TrainerSearchResponse' });
export const CheckpointSearchRequest = z.looseObject({ checkpoint_path: z.string().min(1) }).meta({ id: 'CheckpointSearchRequest' });

// ── Data plane: the trainer (loops-data-plane.md §7–§8) ───────────────────────────────────────

/** Nested lists are accepted and flattened row-major (the SDK's `TensorData.from_list`). */
type NestedValues = (number | boolean | null | NestedValues)[];
const NestedValues: z.ZodType<NestedValues> = z.array(z.union([z.number(), z.boolean(), z.null(), z.lazy(() => NestedValues)]));

export const TensorData = z.object({
  data: NestedValues,
  dtype: z.enum(['float32', 'float16', 'bfloat16', 'float64', 'int32', 'int64', 'int8', 'bool']),
  shape: z.array(z.number().int().min(0)),
});
export type TensorData = z.infer<typeof TensorData>;

export const ModelInputChunk = z.discriminatedUnion('type', [
  z.object({ type: z.literal('encoded_text'), tokens: z.array(z.number().int().min(0)) }),
  z.looseObject({ type: z.literal('image') }),
]);

export const Datum = z.object({
  model_input: z.object({ chunks: z.array(ModelInputChunk) }),
  loss_fn_inputs: z.record(z.string(), TensorData),
  routed_experts_ref: z.unknown().optional(),
});
export type Datum = z.infer<typeof Datum>;

/** Every op body names the run (null only from `ServiceClient.local`); `seq_id` and `model` are for logs. */
const OpBody = { run_id: optional(z.string()), seq_id: optional(z.number().int()), model: optional(z.string()) };

export const InitTrainerServerRequest = z.looseObject({ ...OpBody, lora_rank: z.number().int().min(1), base_model: optional(z.string()) });

export const ForwardBackwardRequest = z.looseObject({
  ...OpBody,
  data: z.array(Datum).min(1, 'must hold at least one Datum'),
  loss_fn: z.string().default('cross_entropy'),
  loss_fn_config: optional(z.record(z.string(), z.union([z.number(), z.boolean()]))),
  top_k_logprobs: z.number().int().min(0).max(20).default(0),
});
export type ForwardBackwardRequest = z.infer<typeof ForwardBackwardRequest>;

/** The SDK's AdamParams; a raw caller's missing fields take the SDK's defaults (§8.7). */
export const AdamParams = adamParams(1.0);
export const OptimStepRequest = z.looseObject({ ...OpBody, adam_params: AdamParams.default(AdamParams.parse({})) });

/** Checkpoint names never split on `/` (§7). */
export const CheckpointName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 letters, digits, dots, underscores or hyphens');

const TtlSeconds = optional(z.number().int().min(1));
export const SaveStateRequest = z.looseObject({ ...OpBody, name: CheckpointName, ttl_seconds: TtlSeconds });
export const SaveWeightsForSamplerRequest = z.looseObject({
  ...OpBody,
  name: CheckpointName.default('default'),
  bump_version: z.boolean().default(false),
  ttl_seconds: TtlSeconds,
});
export const LoadStateRequest = z.looseObject({ ...OpBody, path: z.string().min(1) });

/** The answer to every accepted submit (§6.1). */
export const OperationAccepted = z.object({ operation_id: z.string(), schema_version: z.literal(1) });

// ── Data plane: the sampler (§9) ──────────────────────────────────────────────────────────────

export const SampleRequest = z.looseObject({
  prompt: z.array(z.number().int().min(0)).min(1, 'must hold at least one token'),
  n: z.number().int().min(1).max(64).default(1),
  temperature: z.number().min(0).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  top_k: optional(z.number().int().min(0)),
  max_tokens: optional(z.number().int().min(1)),
  seed: optional(z.number().int()),
  stop: optional(z.union([z.string().min(1), z.array(z.string().min(1)).max(16)])),
  stop_token_ids: optional(z.array(z.number().int().min(0)).max(64)),
  logprobs: optional(z.number().int().min(0)),
  prompt_logprobs: optional(z.number().int().min(0).max(20)),
  return_tokens_as_token_ids: optional(z.boolean()),
  structured_outputs: z.unknown().optional(),
  model_input_chunks: z.unknown().optional(),
  include_routed_experts: optional(z.boolean()),
  model: optional(z.string()),
  lora: optional(z.string()),
});
export type SampleRequest = z.infer<typeof SampleRequest>;

// ── Loss per step (Bakehouse's own) ───────────────────────────────────────────────────────────

export const RunMetricsQuery = z.object({
  page_size: z.coerce.number().int().min(1).max(1000).default(1000),
  page_token: z.string().min(1).optional().meta({ description: 'The next_page_token of the previous page; none for the first' }),
});

export const RunStepMetric = z
  .object({
    step: z.number().int().meta({ description: 'Optimizer steps taken, this one included (init and load reset it)' }),
    loss: z.number().nullable().meta({ description: 'Token-weighted mean loss of the forward_backward calls since the previous step; null when they counted no token' }),
    learning_rate: z.number(),
    grad_norm: z.number().meta({ description: 'Before clipping' }),
    tokens: z.number().int().meta({ description: 'Active tokens of those forward_backward calls' }),
    time: Timestamp.meta({ description: 'When the step’s result arrived' }),
  })
  .meta({ id: 'LoopsRunStepMetric' });

export const RunMetricsResponse = z
  .object({
    metrics: z.array(RunStepMetric).meta({ description: 'In the order the steps ran' }),
    next_page_token: z.string().nullable().meta({ description: 'Pass as page_token for the next page; null at the end' }),
  })
  .meta({ id: 'LoopsRunMetrics' });

/**
 * The Tinker protocol's JSON bodies (loops-api.md Part 2, §2.14), as the stock `tinker` SDK sends
 * and reads them at `{origin}/tinker/api/v1/*`. Request objects strip what they do not name, since
 * newer SDKs add fields a server must ignore (§2.1); defaults are Tinker's own. The protobuf side
 * is functions/http/routes/tinker/proto.
 */
import { z } from 'zod';
import { adamParams } from './adam-params.ts';

const Int = z.number().int();

export const EncodedTextChunk = z.object({ type: z.literal('encoded_text').default('encoded_text'), tokens: z.array(Int.min(0)) });

/** Image and audio chunks are named so that a request holding one can be refused with a sentence. */
export const ModelInputChunk = z.union([EncodedTextChunk, z.object({ type: z.enum(['image', 'image_asset_pointer', 'dmel']) })]);

export const ModelInput = z.object({ chunks: z.array(ModelInputChunk) });
export type ModelInput = z.infer<typeof ModelInput>;

/** A flat tensor; with `sparse_*` set it is CSR over `shape` (§2.7). */
export const TensorData = z.object({
  data: z.array(z.number().nullable()),
  dtype: z.enum(['int64', 'float32']),
  shape: z.array(Int.min(0)).nullish(),
  sparse_crow_indices: z.array(Int.min(0)).nullish(),
  sparse_col_indices: z.array(Int.min(0)).nullish(),
});
export type TensorData = z.infer<typeof TensorData>;

export const Datum = z.object({
  model_input: ModelInput,
  /** A plain list is allowed too; its dtype follows the input's name (§2.7). */
  loss_fn_inputs: z.record(z.string(), z.union([TensorData, z.array(z.number())])),
});
export type Datum = z.infer<typeof Datum>;

export const ForwardBackwardInput = z.object({
  data: z.array(Datum).min(1, 'send at least one datum'),
  loss_fn: z.string(),
  loss_fn_config: z.record(z.string(), z.number()).nullish(),
});
export type ForwardBackwardInput = z.infer<typeof ForwardBackwardInput>;

const ModelAddressed = { model_id: z.string().min(1), seq_id: Int.min(1) };

/** A checkpoint's time to live: Tinker documents 1 hour to 10 years (365-day years). */
export const TTL_SECONDS_MIN = 3600;
export const TTL_SECONDS_MAX = 10 * 365 * 24 * 3600;
const TTL_RANGE = `must be a whole number of seconds from ${TTL_SECONDS_MIN} (an hour) to ${TTL_SECONDS_MAX} (ten years)`;
const TtlSeconds = z.number({ error: `${TTL_RANGE}, or null for no expiry` }).int(TTL_RANGE).min(TTL_SECONDS_MIN, TTL_RANGE).max(TTL_SECONDS_MAX, TTL_RANGE);

export const ForwardBackwardRequest = z.object({ forward_backward_input: ForwardBackwardInput, ...ModelAddressed });
export const ForwardRequest = z.object({ forward_input: ForwardBackwardInput, ...ModelAddressed });

export const ClientConfigRequest = z.object({ sdk_version: z.string().nullish() });

export const CreateSessionRequest = z.object({
  tags: z.array(z.string()).nullish(),
  user_metadata: z.record(z.string(), z.unknown()).nullish(),
  sdk_version: z.string().nullish(),
  project_id: z.string().nullish(),
});

export const SessionRequest = z.object({ session_id: z.string().min(1) });
export const ModelRequest = z.object({ model_id: z.string().min(1) });

export const LoraConfig = z.object({
  rank: Int.min(1).default(32),
  seed: Int.nullish(),
  train_unembed: z.boolean().default(true),
  train_mlp: z.boolean().default(true),
  train_attn: z.boolean().default(true),
});

export const OptimizerConfig = z.object({ type: z.string() });

export const CreateModelRequest = z.object({
  session_id: z.string().min(1),
  model_seq_id: Int.min(0),
  base_model: z.string().min(1),
  user_metadata: z.record(z.string(), z.unknown()).nullish(),
  lora_config: LoraConfig.nullish(),
  optimizer_config: OptimizerConfig.nullish(),
});

/** Tinker's defaults, which differ from Loops' in `grad_clip_norm` (0: no clipping). */
export const AdamParams = adamParams(0);

export const OptimStepRequest = z.object({
  adam_params: AdamParams.nullish(),
  optimizer_params: z.object({ type: z.string() }).nullish(),
  ...ModelAddressed,
});

export const SaveWeightsRequest = z.object({ path: z.string().nullish(), ttl_seconds: TtlSeconds.nullish(), ...ModelAddressed });

export const SaveWeightsForSamplerRequest = z.object({
  path: z.string().nullish(),
  sampling_session_seq_id: Int.min(0).nullish(),
  ttl_seconds: TtlSeconds.nullish(),
  ...ModelAddressed,
});

/**
 * 0.38's `save_weights_external`: the run's adapter under `external_weights/<path>`. Files are
 * stored unencrypted, so `age_encryption_recipients` is refused rather than ignored.
 */
export const SaveWeightsExternalRequest = z.object({
  path: z.string({ error: 'name the external weights to save (letters, digits, ".", "_" or "-")' }).min(1, 'name the external weights to save (letters, digits, ".", "_" or "-")'),
  ttl_seconds: TtlSeconds.nullish(),
  age_encryption_recipients: z.array(z.string()).max(0, 'age encryption is not supported here; save without age_encryption_recipients and encrypt the downloaded files yourself').nullish(),
  ...ModelAddressed,
});

/** By model (`model_id`, `seq_id`), or the session-addressed create-via-load form (`session_id`, `model_seq_id`). */
export const LoadWeightsRequest = z.object({
  path: z.string().min(1),
  optimizer: z.boolean().default(false),
  model_id: z.string().min(1).nullish(),
  seq_id: Int.min(1).nullish(),
  session_id: z.string().min(1).nullish(),
  model_seq_id: Int.min(0).nullish(),
  base_model: z.string().nullish(),
  user_metadata: z.record(z.string(), z.unknown()).nullish(),
  optimizer_config: OptimizerConfig.nullish(),
});

export const WeightsInfoRequest = z.object({ tinker_path: z.string().min(1) });

export const CreateSamplingSessionRequest = z.object({
  session_id: z.string().min(1),
  sampling_session_seq_id: Int.min(0),
  base_model: z.string().min(1).nullish(),
  model_path: z.string().min(1).nullish(),
});

export const SamplingParams = z.object({
  max_tokens: Int.min(1).nullish(),
  seed: Int.nullish(),
  stop: z.union([z.string(), z.array(z.string()), z.array(Int.min(0))]).nullish(),
  temperature: z.number().min(0).default(1),
  top_k: Int.default(-1),
  top_p: z.number().gt(0).max(1).default(1),
});

export const SampleRequest = z.object({
  num_samples: Int.min(1).default(1),
  prompt: ModelInput,
  sampling_params: SamplingParams,
  sampling_session_id: z.string().min(1).nullish(),
  base_model: z.string().nullish(),
  model_path: z.string().nullish(),
  seq_id: Int.min(0).nullish(),
  prompt_logprobs: z.boolean().nullish(),
  topk_prompt_logprobs: Int.min(0).default(0),
  topk_sample_logprobs: Int.min(0).default(0),
  prompt_alt_tokens_k: Int.min(0).default(0),
  prompt_logprobs_last_n: Int.nullish(),
  target_prompt_logprobs: z.unknown().optional(),
});
export type SampleRequest = z.infer<typeof SampleRequest>;

export const RetrieveFutureRequest = z.object({ request_id: z.string().min(1), allow_metadata_only: z.boolean().default(false) });

export const TrainingRunsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(20), offset: z.coerce.number().int().min(0).default(0) });

/** `owned`: the caller's runs; `accessible`: theirs and other users' runs that hold public checkpoints. */
export const AccessScopeQuery = z.object({ access_scope: z.enum(['owned', 'accessible']).default('owned') });

/** `PUT …/checkpoints/{checkpoint_id}/ttl`: expire `ttl_seconds` from now, or never (null). */
export const SetCheckpointTtlRequest = z.object({ ttl_seconds: TtlSeconds.nullable() });

// ── Answers ──

export const TinkerCheckpoint = z.object({
  checkpoint_id: z.string(),
  checkpoint_type: z.enum(['training', 'sampler', 'external']),
  time: z.string(),
  tinker_path: z.string(),
  size_bytes: Int.nullable(),
  public: z.boolean(),
  expires_at: z.string().nullable(),
  base_model: z.string(),
});
export type TinkerCheckpoint = z.infer<typeof TinkerCheckpoint>;

export const TinkerTrainingRun = z.object({
  training_run_id: z.string(),
  base_model: z.string(),
  model_owner: z.string(),
  is_lora: z.boolean(),
  corrupted: z.boolean(),
  lora_rank: Int.nullable(),
  last_request_time: z.string(),
  last_checkpoint: TinkerCheckpoint.nullable(),
  last_sampler_checkpoint: TinkerCheckpoint.nullable(),
  user_metadata: z.record(z.string(), z.unknown()).nullable(),
});
export type TinkerTrainingRun = z.infer<typeof TinkerTrainingRun>;

/** `GET …/checkpoints/external_weights/<name>/external_weights_urls`: a signed URL per file, by its path in the checkpoint. */
export const ExternalWeightsUrls = z.object({ urls: z.record(z.string(), z.string()), expires: z.string() });
export type ExternalWeightsUrls = z.infer<typeof ExternalWeightsUrls>;

export const Cursor = z.object({ offset: Int, limit: Int, total_count: Int });

/** The JSON form of a forward or forward_backward result (§2.9); ≥ 0.25 clients get the protobuf form. */
export const ForwardBackwardOutput = z.object({
  loss_fn_output_type: z.string(),
  loss_fn_outputs: z.array(z.record(z.string(), TensorData)),
  metrics: z.record(z.string(), z.number()),
});
export type ForwardBackwardOutput = z.infer<typeof ForwardBackwardOutput>;

/** The JSON form of a sample result (§2.10); ≥ 0.25 clients get the protobuf form. */
export const SampleResponse = z.object({
  sequences: z.array(z.object({ stop_reason: z.enum(['length', 'stop']), tokens: z.array(Int), logprobs: z.array(z.number()) })),
  prompt_logprobs: z.array(z.number().nullable()).nullable(),
  topk_prompt_logprobs: z.array(z.array(z.tuple([Int, z.number()])).nullable()).nullable(),
  prompt_cache_hit_tokens: Int,
  type: z.literal('sample'),
});
export type SampleResponse = z.infer<typeof SampleResponse>;

/** An operation failure, answered with 200 by `retrieve_future` (§2.5). */
export const FutureError = z.object({ error: z.string(), category: z.enum(['user', 'server', 'unknown']) });

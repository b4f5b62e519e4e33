/**
 * The trainer engine's contract (DESIGN.md §1, loops-api.md §3.2): what a trainer job is given,
 * the operations it executes for its run, and what it answers. Protocol-neutral: the Loops and
 * Tinker fronts translate their wire formats into these operations and these results back, so
 * the engine never knows which protocol a request came in by.
 *
 * A trainer is a long-running compute job serving one run, reached by relay (it accepts no
 * inbound connections). Its routes take `Authorization: Bearer <relay_token>` from the job spec:
 *
 * - `POST /v1/relay/trainers/{job_id}/ready` — TrainerReady → 200 `{}`. The base model is loaded
 *   and any autosaved state restored; the run answers `/health` with 200 from now on.
 * - `POST /v1/relay/trainers/{job_id}/next` — TrainerNextRequest → TrainerNextResponse (200; no
 *   operation when none arrived within `wait_s`; `idle_s` says how long clients have left the run
 *   alone). Operations come in acceptance order, one at a time: the trainer asks again only when
 *   it has posted the result of the one it holds. The one it holds is handed out again (same id)
 *   if it asks without having answered it.
 * - `POST /v1/relay/trainers/{job_id}/operations/{operation_id}/result` — TrainerOperationResult →
 *   200 `{}`. Posting the same result twice (a retry) stores it once.
 *
 * A 401 means the token is wrong; a 410 that this job no longer serves the run (deactivated, or
 * another trainer took over): it should stop at once, without autosaving.
 *
 * State the engine keeps between operations: the LoRA adapter, the optimizer, the accumulated
 * gradient with its normalisation mode and active-token count, the step (optimizer steps taken),
 * and the policy version (the step at the last `save` with `publish`). When it stops after
 * `idle_timeout_s` without an operation or client activity (`idle_s`) it first writes all of that
 * under `state_uri`, and a trainer started with that `state_uri` restores it before `ready`:
 * scaling to zero is invisible.
 * The job's settings are TrainerJobSpec in job-spec.ts.
 */
import { z } from 'zod';

const PrefixUri = z
  .string()
  .regex(/^(file|s3):\/\/.+\/$/, 'must be a file:// or s3:// prefix ending in /')
  .meta({ description: 'A file:// or s3:// prefix ending in /' });

export const TrainerDtype = z.enum(['float32', 'float16', 'bfloat16', 'float64', 'int32', 'int64', 'int8', 'bool']);

/** A tensor in row-major order. Float outputs carry `null` where a value is not finite. */
export const TrainerTensor = z
  .object({
    data: z.array(z.number().nullable()).meta({ description: 'Flat, row-major; the fronts flatten nested input' }),
    dtype: TrainerDtype,
    shape: z.array(z.number().int().min(0)),
  })
  .meta({ id: 'TrainerTensor' });
export type TrainerTensor = z.infer<typeof TrainerTensor>;

/** One training example: position i of `tokens` predicts `loss_fn_inputs.target_tokens[i]`. */
export const TrainerDatum = z
  .object({
    tokens: z.array(z.number().int().min(0)).min(1),
    loss_fn_inputs: z.record(z.string(), TrainerTensor).meta({
      description: 'target_tokens (N or N×K), weights, logprobs, advantages, ref_logprobs, … as the loss needs; each as long as tokens (advantages may be [1])',
    }),
  })
  .meta({ id: 'TrainerDatum' });
export type TrainerDatum = z.infer<typeof TrainerDatum>;

export const LossFn = z.enum(['cross_entropy', 'importance_sampling', 'ppo', 'cispo', 'dro', 'dpo']);
export type LossFn = z.infer<typeof LossFn>;

/**
 * `sum`: the gradient and the reported loss are plain sums over tokens (Tinker; Loops with
 * `skip_token_normalization`). `token_mean_deferred`: the gradient accumulates the sum and the
 * active-token count, `optim_step` divides by the count; the reported loss is this call's sum over
 * its own active tokens (the Loops default, loops-data-plane.md §8.4). A call whose mode differs
 * from the gradient already accumulated fails with ValueError.
 */
export const Normalization = z.enum(['sum', 'token_mean_deferred']);
export type Normalization = z.infer<typeof Normalization>;

export const AdamSettings = z
  .object({
    learning_rate: z.number().min(0),
    beta1: z.number().min(0).lt(1),
    beta2: z.number().min(0).lt(1),
    eps: z.number().min(0),
    weight_decay: z.number().min(0),
    grad_clip_norm: z.number().min(0).meta({ description: '0: no clipping. The fronts fill their own default (Loops 1.0, Tinker 0.0)' }),
  })
  .meta({ id: 'AdamSettings' });
export type AdamSettings = z.infer<typeof AdamSettings>;

export const TrainerOperation = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('init'),
      lora_rank: z.number().int().min(1).meta({ description: "Must equal the run's rank; resets the adapter, optimizer, gradient and step" }),
    }),
    z.object({
      kind: z.literal('forward'),
      backward: z.boolean().meta({ description: 'Accumulate gradients (forward_backward) or only compute (forward)' }),
      data: z.array(TrainerDatum).min(1),
      loss_fn: LossFn,
      loss_fn_config: z.record(z.string(), z.number()).nullable().meta({ description: "The loss's settings (clip thresholds, beta, …); keys it does not take are ignored" }),
      normalization: Normalization,
      top_k_logprobs: z.number().int().min(0).max(20),
    }),
    z.object({ kind: z.literal('optim_step'), adam: AdamSettings }),
    z.object({
      kind: z.literal('save'),
      what: z.enum(['state', 'sampler']).meta({ description: 'state: adapter + optimizer + step (resumable); sampler: a PEFT adapter to sample from' }),
      publish: z.boolean().meta({ description: 'sampler only: the policy version becomes the current step' }),
      uri: PrefixUri.meta({ description: 'Where the files go; overwritten whole' }),
    }),
    z.object({
      kind: z.literal('load'),
      uri: PrefixUri.meta({ description: 'A state saved by `save` with what=state' }),
      with_optimizer: z.boolean().meta({ description: 'Also restore the optimizer and the step; else the optimizer is reset' }),
    }),
  ])
  .meta({ id: 'TrainerOperation' });
export type TrainerOperation = z.infer<typeof TrainerOperation>;
export type TrainerOperationKind = TrainerOperation['kind'];

export const LoraConfig = z
  .looseObject({ r: z.number().int().min(1), lora_alpha: z.number(), target_modules: z.array(z.string()) })
  .meta({ id: 'LoraConfig', description: 'The PEFT adapter_config.json subset the checkpoint records carry' });
export type LoraConfig = z.infer<typeof LoraConfig>;

const DatumOutput = z.looseObject({
  logprobs: TrainerTensor.meta({ description: 'float32, the shape of target_tokens: the log-prob of each target at every position, weight-0 positions included' }),
  top_k_token_ids: TrainerTensor.optional().meta({ description: 'int64 [N, k], when top_k_logprobs > 0' }),
  top_k_logprobs: TrainerTensor.optional().meta({ description: 'float32 [N, k], when top_k_logprobs > 0' }),
});

/** The `result` of each operation kind, on success. */
export const TrainerResults = {
  init: z.object({ step: z.number().int().min(0), lora_rank: z.number().int().min(1) }),
  forward: z.object({
    loss: z.number().meta({ description: 'Under the normalization asked for: the sum, or the sum over this call’s active tokens' }),
    loss_sum: z.number(),
    active_tokens: z.number().int().min(0).meta({ description: 'Positions with weight > 0 (every position when the loss has no weights)' }),
    outputs: z.array(DatumOutput).meta({ description: 'One per datum, in request order' }),
    metrics: z.record(z.string(), z.number()).meta({ description: "The loss's own diagnostics (e.g. dpo accuracy); plain names" }),
  }),
  optim_step: z.object({
    step: z.number().int().min(1).meta({ description: 'Optimizer steps taken, this one included' }),
    learning_rate: z.number(),
    grad_norm: z.number().meta({ description: 'Before clipping; 0 when no gradient had accumulated' }),
  }),
  save: z.object({
    step: z.number().int().min(0),
    policy_version: z.number().int().min(0).meta({ description: 'The step at the last publish (0: the adapter equals the base model)' }),
    files: z.array(z.object({ name: z.string(), size_bytes: z.number().int().min(0) })).min(1),
    lora_config: LoraConfig,
  }),
  load: z.object({ step: z.number().int().min(0) }),
} satisfies Record<TrainerOperationKind, z.ZodType>;
export type TrainerResult<K extends TrainerOperationKind> = z.infer<(typeof TrainerResults)[K]>;

export const TrainerReady = z
  .object({
    step: z.number().int().min(0).meta({ description: 'The step restored from state_uri, or 0' }),
    lora_config: LoraConfig,
  })
  .meta({ id: 'TrainerReady' });

export const TrainerNextRequest = z
  .object({ wait_s: z.number().min(0).max(30).meta({ description: 'How long to wait for an operation before answering with none' }) })
  .meta({ id: 'TrainerNextRequest' });

export const HeldOperation = z
  .object({
    id: z.string().min(1),
    seq: z.number().int().min(1).meta({ description: "Acceptance order within the run; for logs" }),
    operation: TrainerOperation,
  })
  .meta({ id: 'HeldOperation' });
export type HeldOperation = z.infer<typeof HeldOperation>;

export const TrainerNextResponse = z
  .object({
    operation: HeldOperation.nullable(),
    idle_s: z.number().min(0).meta({
      description:
        'Seconds since a client last used the run (an operation submitted, a health check). The trainer counts its idle time ' +
        'from the later of that and its own last operation, so a client that keeps checking health keeps it up',
    }),
  })
  .meta({ id: 'TrainerNextResponse' });

/**
 * What a trainer posts for the operation it held. `error_class` is a Python-style class name:
 * ValueError for input found wrong at run time, RuntimeError for engine faults.
 */
export const TrainerOperationResult = z
  .discriminatedUnion('status', [
    z.object({ status: z.literal('done'), result: z.looseObject({}).meta({ description: "The operation kind's TrainerResults entry" }) }),
    z.object({ status: z.literal('error'), error: z.string().min(1), error_class: z.string().min(1) }),
  ])
  .meta({ id: 'TrainerOperationResult' });
export type TrainerOperationResult = z.infer<typeof TrainerOperationResult>;

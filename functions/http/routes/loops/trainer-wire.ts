/**
 * The Loops trainer wire (loops-data-plane.md §7–§8) to and from the training service's neutral
 * operations: Datum → TrainerDatum, op bodies → SubmittedOperation, engine results → the shapes
 * the SDK validates. Pure functions; input problems throw ValidationError (422 + `06`).
 */
import { assertTrainerData } from '#core/training/datum-checks.ts';
import type { AnsweredOperation, SubmittedOperation } from '#core/training/model.ts';
import { ValidationError } from '#core/errors.ts';
import {
  ForwardBackwardRequest,
  InitTrainerServerRequest,
  LoadStateRequest,
  OptimStepRequest,
  SaveStateRequest,
  SaveWeightsForSamplerRequest,
  type Datum,
  type TensorData,
} from '#schemas/loops.ts';
import { LossFn, TrainerResults, type TrainerDatum, type TrainerTensor } from '#schemas/trainer.ts';

/** The op routes at `run.base_url`, each with the body it takes. */
export const TRAINER_OPS = {
  init_trainer_server: InitTrainerServerRequest,
  forward_backward: ForwardBackwardRequest,
  forward: ForwardBackwardRequest,
  optim_step: OptimStepRequest,
  save_state: SaveStateRequest,
  save_weights_for_sampler: SaveWeightsForSamplerRequest,
  load_state: LoadStateRequest,
  load_state_with_optimizer: LoadStateRequest,
} as const;
export type TrainerOpName = keyof typeof TRAINER_OPS;

type Body<Op extends TrainerOpName> = ReturnType<(typeof TRAINER_OPS)[Op]['parse']>;

/**
 * Flattens nested `data` in row-major order; `bool` cells become 1 and 0. Flat numbers (what
 * `from_torch` sends) are taken as they are: a body holds millions of cells.
 */
function flatten(values: TensorData['data']): (number | null)[] {
  if (!values.some((value) => Array.isArray(value) || typeof value === 'boolean')) return values as (number | null)[];
  return flattenInto(values, []);
}

function flattenInto(values: TensorData['data'], into: (number | null)[]): (number | null)[] {
  for (const value of values) {
    if (Array.isArray(value)) flattenInto(value, into);
    else into.push(typeof value === 'boolean' ? Number(value) : value);
  }
  return into;
}

function toTensor(tensor: TensorData): TrainerTensor {
  return { data: flatten(tensor.data), dtype: tensor.dtype, shape: tensor.shape };
}

/** One Datum as the trainer takes it: its text chunks joined into tokens, its tensors flat. */
export function toTrainerDatum(datum: Datum, index: number): TrainerDatum {
  const at = `data.${index}`;
  if (datum.routed_experts_ref != null) {
    throw new ValidationError(`${at}.routed_experts_ref: routing replay is not supported; send null`);
  }
  const chunks = datum.model_input.chunks.map((chunk) => {
    if (chunk.type !== 'encoded_text') throw new ValidationError(`${at}.model_input: image chunks are not supported; send encoded_text chunks only`);
    return chunk.tokens;
  });
  // Not push(...tokens): a 24 MiB datum has more tokens than a call may take arguments.
  const tokens = chunks.length === 1 ? chunks[0]! : chunks.flat();
  if (tokens.length === 0) throw new ValidationError(`${at}.model_input: must hold at least one token`);
  const inputs = Object.fromEntries(Object.entries(datum.loss_fn_inputs).map(([name, tensor]) => [name, toTensor(tensor)]));
  const targets = inputs.target_tokens;
  if (targets?.data.some((token) => token === null || token < 0 || !Number.isInteger(token))) {
    throw new ValidationError(
      `${at}.loss_fn_inputs.target_tokens: token ids must be whole numbers ≥ 0. Instead of -100 labels, shift by one ` +
        '(model_input = tokens[:-1], target_tokens = tokens[1:]) and give masked positions weight 0.',
    );
  }
  return { tokens, loss_fn_inputs: inputs };
}

function toForward(body: ForwardBackwardRequest, backward: boolean): SubmittedOperation {
  if (body.loss_fn === 'dppo') throw new ValidationError('loss_fn: dppo is not supported; use ppo, cispo or importance_sampling');
  const lossFn = LossFn.safeParse(body.loss_fn);
  if (!lossFn.success) throw new ValidationError(`loss_fn: '${body.loss_fn}' is not a loss; use one of ${LossFn.options.join(', ')}`);
  const { skip_token_normalization: skip = false, ...rest } = body.loss_fn_config ?? {};
  const config: Record<string, number> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (typeof value !== 'number') throw new ValidationError(`loss_fn_config.${key}: must be a number`);
    config[key] = value;
  }
  const data = body.data.map(toTrainerDatum);
  assertTrainerData(data, lossFn.data);
  return {
    kind: 'forward',
    backward,
    data,
    loss_fn: lossFn.data,
    loss_fn_config: body.loss_fn_config ? config : null,
    normalization: skip ? 'sum' : 'token_mean_deferred',
    top_k_logprobs: body.top_k_logprobs,
  };
}

/** The neutral operation a validated op body asks for. */
export function toSubmittedOperation<Op extends TrainerOpName>(op: Op, body: Body<Op>): SubmittedOperation {
  switch (op) {
    case 'init_trainer_server':
      return { kind: 'init', lora_rank: (body as Body<'init_trainer_server'>).lora_rank };
    case 'forward_backward':
    case 'forward':
      return toForward(body as Body<'forward'>, op === 'forward_backward');
    case 'optim_step':
      return { kind: 'optim_step', adam: (body as Body<'optim_step'>).adam_params };
    case 'save_state':
      return { kind: 'save', what: 'state', publish: false, name: (body as Body<'save_state'>).name, ttlSeconds: (body as Body<'save_state'>).ttl_seconds ?? null };
    case 'save_weights_for_sampler': {
      const save = body as Body<'save_weights_for_sampler'>;
      // A publish is kept: ttl_seconds applies only to staged adapters (§7).
      return { kind: 'save', what: 'sampler', publish: save.bump_version, name: save.name, ttlSeconds: save.bump_version ? null : (save.ttl_seconds ?? null) };
    }
    case 'load_state':
    case 'load_state_with_optimizer':
      return { kind: 'load', path: (body as Body<'load_state'>).path, withOptimizer: op === 'load_state_with_optimizer' };
  }
  throw new Error(`unknown trainer op ${String(op)}`);
}

/** An engine result as the SDK's result model for the operation it answers (§7, §8.5). */
export function toLoopsResult(operation: AnsweredOperation, result: Record<string, unknown>): Record<string, unknown> {
  switch (operation.kind) {
    case 'init':
      return TrainerResults.init.parse(result);
    case 'forward': {
      const { loss, outputs, metrics } = TrainerResults.forward.parse(result);
      const skip = operation.normalization === 'sum';
      return {
        loss,
        loss_fn_output_type: 'ArrayRecord',
        loss_fn_outputs: outputs,
        // The SDK merges chunk results by averaging every metric; `forward_backward_custom` needs the echo.
        metrics: { ...metrics, loss, ...(skip ? { skip_token_normalization: 1.0 } : {}) },
      };
    }
    case 'optim_step': {
      const { step, learning_rate, grad_norm } = TrainerResults.optim_step.parse(result);
      return { metrics: { step, learning_rate, lr: learning_rate, grad_norm } };
    }
    case 'save': {
      const { policy_version } = TrainerResults.save.parse(result);
      const path = typeof result.path === 'string' ? result.path : '';
      return operation.what === 'state' ? { mode: '', path } : { version: policy_version, path };
    }
    case 'load':
      return TrainerResults.load.parse(result);
  }
}

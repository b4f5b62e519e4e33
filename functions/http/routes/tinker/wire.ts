/**
 * The Tinker JSON wire (loops-api.md §2.7–§2.10) to and from the training service's neutral
 * operations and results: Datum → TrainerDatum, engine results → the shapes the SDK reads, sample
 * requests and results. Tinker's semantics live here: losses summed per token, metric keys
 * `name:reduction`, raw prompt log-probs. Pure functions; input problems throw ValidationError
 * (400 on the Tinker routes).
 */
import { ValidationError } from '#core/errors.ts';
import { assertTrainerData } from '#core/training/datum-checks.ts';
import type { SubmittedOperation } from '#core/training/model.ts';
import type { SampleRequest as NeutralSampleRequest, SampleResult } from '#schemas/relay.ts';
import type { Datum, ForwardBackwardInput, ForwardBackwardOutput, ModelInput, SampleRequest, SampleResponse, TensorData } from '#schemas/tinker.ts';
import { denseFromCsr } from './csr.ts';
import { TrainerResults, type LossFn, type TrainerDatum, type TrainerTensor } from '#schemas/trainer.ts';

/** Tinker's losses (§2.8); the trainer's others belong to Loops. */
export const TINKER_LOSSES = ['cross_entropy', 'importance_sampling', 'ppo', 'cispo', 'dro'] as const satisfies readonly LossFn[];

/** The dtype of a plain list in `loss_fn_inputs`, by the input's name (§2.7). */
const listDtype = (name: string): TensorData['dtype'] => (name === 'target_tokens' ? 'int64' : 'float32');

/** The tokens of a prompt or model input: its text chunks joined; images and audio are refused. */
export function tokensOf(input: ModelInput, at: string): number[] {
  const tokens: number[] = [];
  for (const chunk of input.chunks) {
    if (!('tokens' in chunk)) throw new ValidationError(`${at}: ${chunk.type} chunks are not supported; send encoded_text chunks only`);
    for (const token of chunk.tokens) tokens.push(token);
  }
  if (tokens.length === 0) throw new ValidationError(`${at}: must hold at least one token`);
  return tokens;
}

/** A JSON TensorData as the trainer takes it: dense, with its shape; CSR tensors are expanded. */
function toTrainerTensor(value: TensorData | number[], name: string, at: string): TrainerTensor {
  if (Array.isArray(value)) return { data: value, dtype: listDtype(name), shape: [value.length] };
  const { data, dtype, sparse_crow_indices: crow, sparse_col_indices: col } = value;
  const shape = value.shape ?? [data.length];
  if (!crow && !col) return { data, dtype, shape };
  if (!crow || !col) throw new ValidationError(`${at}: a sparse tensor needs both sparse_crow_indices and sparse_col_indices`);
  return { data: denseFromCsr(shape, data, crow, col, at), dtype, shape };
}

export function toTrainerDatum(datum: Datum, index: number): TrainerDatum {
  const at = `data.${index}`;
  const tokens = tokensOf(datum.model_input, `${at}.model_input`);
  const inputs = Object.fromEntries(Object.entries(datum.loss_fn_inputs).map(([name, tensor]) => [name, toTrainerTensor(tensor, name, `${at}.loss_fn_inputs.${name}`)]));
  if (inputs.target_tokens?.data.some((token) => token === null || token < 0 || !Number.isInteger(token))) {
    throw new ValidationError(`${at}.loss_fn_inputs.target_tokens: token ids must be whole numbers ≥ 0; give masked positions weight 0 instead`);
  }
  return { tokens, loss_fn_inputs: inputs };
}

/**
 * A forward or forward_backward as the trainer runs it: Tinker sums the loss over tokens
 * (`normalization: 'sum'`) and reads `logprobs` back for every loss. `config` comes from the JSON
 * body or the protobuf codec (whose v2 map may carry text, which no loss takes).
 */
export function toForward(input: { data: TrainerDatum[]; loss_fn: string; loss_fn_config: Record<string, number | string> | null | undefined }, backward: boolean): SubmittedOperation {
  const lossFn = TINKER_LOSSES.find((loss) => loss === input.loss_fn);
  if (!lossFn) throw new ValidationError(`loss_fn: '${input.loss_fn}' is not supported; use one of ${TINKER_LOSSES.join(', ')}`);
  const config: Record<string, number> = {};
  for (const [key, value] of Object.entries(input.loss_fn_config ?? {})) {
    if (typeof value !== 'number') throw new ValidationError(`loss_fn_config.${key}: must be a number`);
    config[key] = value;
  }
  assertTrainerData(input.data, lossFn);
  return {
    kind: 'forward',
    backward,
    data: input.data,
    loss_fn: lossFn,
    loss_fn_config: input.loss_fn_config ? config : null,
    normalization: 'sum',
    top_k_logprobs: 0,
  };
}

export function jsonForward(input: ForwardBackwardInput, backward: boolean): SubmittedOperation {
  return toForward({ data: input.data.map(toTrainerDatum), loss_fn: input.loss_fn, loss_fn_config: input.loss_fn_config }, backward);
}

/** A metric key as the SDK merges it: exactly one `:` between the name and its reduction (§2.9, §2.14). */
const metricKey = (name: string, reduction: string) => `${name.replaceAll(':', '_')}:${reduction}`;

/** A forward result in Tinker's terms, one output per datum with its `logprobs`; the codec writes the same as protobuf. */
export function toForwardBackwardOutput(result: Record<string, unknown>): { loss_fn_output_type: string; loss_fn_outputs: Record<string, TrainerTensor>[]; metrics: Record<string, number> } {
  const { loss_sum: lossSum, outputs, metrics } = TrainerResults.forward.parse(result);
  return {
    loss_fn_output_type: 'ArrayRecord',
    loss_fn_outputs: outputs.map((output) => Object.fromEntries(Object.entries(output).filter((entry): entry is [string, TrainerTensor] => entry[1] !== undefined))),
    // The loss's own diagnostics are per-batch figures: a mean merges them across chunks.
    metrics: { [metricKey('loss', 'sum')]: lossSum, ...Object.fromEntries(Object.entries(metrics).map(([name, value]) => [metricKey(name, 'mean'), value])) },
  };
}

/** The JSON form for clients that read results as JSON (≤ 0.24 without protobuf). */
export function toJsonForwardBackwardOutput(output: ReturnType<typeof toForwardBackwardOutput>): ForwardBackwardOutput {
  return {
    ...output,
    loss_fn_outputs: output.loss_fn_outputs.map((fields) =>
      Object.fromEntries(Object.entries(fields).map(([name, tensor]) => [name, { data: tensor.data, dtype: tensor.dtype === 'int64' ? 'int64' : 'float32', shape: tensor.shape }])),
    ),
  };
}

export function toOptimStepResult(result: Record<string, unknown>) {
  const { step, learning_rate: learningRate, grad_norm: gradNorm } = TrainerResults.optim_step.parse(result);
  return { metrics: { [metricKey('step', 'max')]: step, [metricKey('learning_rate', 'mean')]: learningRate, [metricKey('grad_norm', 'mean')]: gradNorm } };
}

/** A sample request in the sampling service's terms; options this server cannot honour are refused, as the 0.38 client would raise on them. */
export function toSampleRequest(body: SampleRequest): NeutralSampleRequest {
  if (body.prompt_alt_tokens_k > 0) throw new ValidationError('prompt_alt_tokens_k: alternative prompt tokens are not supported; send 0');
  if (body.prompt_logprobs_last_n != null) throw new ValidationError('prompt_logprobs_last_n: not supported; leave it out to get every prompt log-prob');
  if (body.topk_sample_logprobs > 0) throw new ValidationError('topk_sample_logprobs: top-k log-probs of sampled tokens are not supported; send 0');
  if (body.target_prompt_logprobs != null) throw new ValidationError('target_prompt_logprobs: not supported; leave it out');
  const { stop, max_tokens: maxTokens, seed, temperature, top_k: topK, top_p: topP } = body.sampling_params;
  const stops = stop == null ? [] : typeof stop === 'string' ? [stop] : stop;
  const wantPromptLogprobs = body.prompt_logprobs === true || body.topk_prompt_logprobs > 0;
  return {
    prompt_tokens: tokensOf(body.prompt, 'prompt'),
    n: body.num_samples,
    temperature,
    top_p: topP,
    // Tinker's -1 (and 0) mean no top-k cut.
    top_k: topK > 0 ? topK : 0,
    max_tokens: maxTokens ?? null,
    seed: seed ?? null,
    stop: stops.filter((value): value is string => typeof value === 'string'),
    stop_token_ids: stops.filter((value): value is number => typeof value === 'number'),
    prompt_logprobs: wantPromptLogprobs ? body.topk_prompt_logprobs : null,
  };
}

export function toJsonSampleResponse(result: SampleResult): SampleResponse {
  return {
    sequences: result.sequences.map((sequence) => ({ stop_reason: sequence.finish_reason, tokens: sequence.tokens, logprobs: sequence.logprobs })),
    prompt_logprobs: result.prompt_logprobs,
    topk_prompt_logprobs: result.topk_prompt_logprobs,
    prompt_cache_hit_tokens: 0,
    type: 'sample',
  };
}

import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors.ts';
import { AdamParams, type Datum } from '#schemas/loops.ts';
import { toLoopsResult, toSubmittedOperation, toTrainerDatum, TRAINER_OPS } from './trainer-wire.ts';

const tensor = (data: unknown[], dtype: string, shape: number[]) => ({ data, dtype, shape });

/** A datum as the SDK builds it: model_input = tokens[:-1], target_tokens = tokens[1:]. */
const datum = (inputs: Record<string, unknown> = {}, chunks: unknown[] = [{ type: 'encoded_text', tokens: [5, 6, 7] }]) =>
  ({
    model_input: { chunks },
    loss_fn_inputs: { target_tokens: tensor([6, 7, 8], 'int64', [3]), weights: tensor([0, 1, 1], 'float32', [3]), ...inputs },
    routed_experts_ref: null,
  }) as Datum;

const forwardBody = (overrides: Record<string, unknown> = {}) =>
  TRAINER_OPS.forward_backward.parse({ data: [datum()], loss_fn: 'cross_entropy', loss_fn_config: null, top_k_logprobs: 0, seq_id: 2, run_id: 'r1', model: 'M', ...overrides });

const rejects = (run: () => unknown, message: RegExp) => {
  expect(run).toThrow(ValidationError);
  expect(run).toThrow(message);
};

describe('toTrainerDatum', () => {
  it('joins text chunks into tokens and keeps flat tensors', () => {
    const chunks = [{ type: 'encoded_text', tokens: [5] }, { type: 'encoded_text', tokens: [6, 7] }];
    expect(toTrainerDatum(datum({}, chunks), 0)).toEqual({
      tokens: [5, 6, 7],
      loss_fn_inputs: { target_tokens: { data: [6, 7, 8], dtype: 'int64', shape: [3] }, weights: { data: [0, 1, 1], dtype: 'float32', shape: [3] } },
    });
  });

  it('flattens nested data row-major, as TensorData.from_list sends it', () => {
    const soft = datum({ target_tokens: tensor([[6, 9], [7, 10], [8, 11]], 'int64', [3, 2]), weights: tensor([[0.5, 0.5], [1, 0], [true, false]], 'float32', [3, 2]) });
    const { loss_fn_inputs } = toTrainerDatum(soft, 0);
    expect(loss_fn_inputs.target_tokens!.data).toEqual([6, 9, 7, 10, 8, 11]);
    expect(loss_fn_inputs.weights!.data).toEqual([0.5, 0.5, 1, 0, 1, 0]);
  });

  it('refuses negative targets with the shift-and-weights recipe', () => {
    rejects(() => toTrainerDatum(datum({ target_tokens: tensor([-100, 7, 8], 'int64', [3]) }), 1), /^data\.1\.loss_fn_inputs\.target_tokens: .*tokens\[1:\].*weight 0/);
  });

  it('refuses image chunks, empty inputs and routing replay', () => {
    rejects(() => toTrainerDatum(datum({}, [{ type: 'image', data: 'aGk=', format: 'png', expected_tokens: 4 }]), 0), /image chunks are not supported/);
    rejects(() => toTrainerDatum(datum({}, []), 0), /at least one token/);
    rejects(() => toTrainerDatum({ ...datum(), routed_experts_ref: { uri: 'bt://loops:r1/sequences/x', version: 1 } }, 0), /routed_experts_ref/);
  });
});

describe('toSubmittedOperation', () => {
  it('makes forward_backward a deferred token-mean forward with backward', () => {
    expect(toSubmittedOperation('forward_backward', forwardBody({ loss_fn: 'ppo', loss_fn_config: { clip_low_threshold: 0.7 }, data: [datum({ logprobs: tensor([0, 0, 0], 'float32', [3]), advantages: tensor([1], 'float32', [1]) })] }))).toMatchObject({
      kind: 'forward',
      backward: true,
      loss_fn: 'ppo',
      loss_fn_config: { clip_low_threshold: 0.7 },
      normalization: 'token_mean_deferred',
      top_k_logprobs: 0,
    });
  });

  it('makes skip_token_normalization a sum, and forward leaves gradients alone', () => {
    expect(toSubmittedOperation('forward', forwardBody({ loss_fn_config: { skip_token_normalization: true } }))).toMatchObject({
      kind: 'forward',
      backward: false,
      loss_fn_config: {},
      normalization: 'sum',
    });
  });

  it('refuses dppo, unknown losses, missing inputs and shapes that do not fit their data', () => {
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ loss_fn: 'dppo' })), /dppo is not supported/);
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ loss_fn: 'hinge' })), /'hinge' is not a loss/);
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ loss_fn: 'importance_sampling' })), /importance_sampling needs logprobs/);
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ data: [datum({ weights: tensor([1, 1], 'float32', [3]) })] })), /shape \[3\] holds 3 values, but data has 2/);
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ data: [datum({ weights: tensor([1, 1], 'float32', [2]) })] })), /must be as long as model_input \(3 tokens/);
    rejects(() => toSubmittedOperation('forward_backward', forwardBody({ loss_fn: 'dpo', data: [datum({ ref_logprobs: tensor([0, 0, 0], 'float32', [3]) })] })), /pairs/);
  });

  it('fills the SDK’s Adam defaults for fields a raw caller leaves out, grad_clip_norm 1.0 included', () => {
    const body = TRAINER_OPS.optim_step.parse({ adam_params: { learning_rate: 0.001 } });
    expect(toSubmittedOperation('optim_step', body)).toEqual({
      kind: 'optim_step',
      adam: { learning_rate: 0.001, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 1.0 },
    });
    expect(AdamParams.parse({}).grad_clip_norm).toBe(1.0);
  });

  it('maps saves and loads to named checkpoints; a publish is never given a ttl', () => {
    expect(toSubmittedOperation('save_state', TRAINER_OPS.save_state.parse({ name: 's3', ttl_seconds: 60 }))).toEqual({ kind: 'save', what: 'state', publish: false, name: 's3', ttlSeconds: 60 });
    expect(toSubmittedOperation('save_weights_for_sampler', TRAINER_OPS.save_weights_for_sampler.parse({ name: 'p-1', bump_version: true, ttl_seconds: 60 }))).toEqual({
      kind: 'save',
      what: 'sampler',
      publish: true,
      name: 'p-1',
      ttlSeconds: null,
    });
    expect(toSubmittedOperation('load_state_with_optimizer', TRAINER_OPS.load_state_with_optimizer.parse({ path: 'bt://loops:r1/weights/s3' }))).toEqual({
      kind: 'load',
      path: 'bt://loops:r1/weights/s3',
      withOptimizer: true,
    });
    expect(TRAINER_OPS.save_state.safeParse({ name: 'a/b' }).success).toBe(false);
  });
});

describe('toLoopsResult', () => {
  const forwardResult = {
    loss: 2.5,
    loss_sum: 5,
    active_tokens: 2,
    outputs: [{ logprobs: { data: [-1, null, -2], dtype: 'float32', shape: [3] } }],
    metrics: {},
  };

  it('shapes a forward as ForwardBackwardOutput with the loss in metrics', () => {
    const operation = toSubmittedOperation('forward_backward', forwardBody());
    expect(toLoopsResult(operation, forwardResult)).toEqual({
      loss: 2.5,
      loss_fn_output_type: 'ArrayRecord',
      loss_fn_outputs: [{ logprobs: { data: [-1, null, -2], dtype: 'float32', shape: [3] } }],
      metrics: { loss: 2.5 },
    });
  });

  it('echoes skip_token_normalization: 1.0 when the caller asked for sums', () => {
    const operation = toSubmittedOperation('forward_backward', forwardBody({ loss_fn_config: { skip_token_normalization: true } }));
    expect(toLoopsResult(operation, { ...forwardResult, loss: 5 }).metrics).toEqual({ loss: 5, skip_token_normalization: 1.0 });
  });

  it('reports optim_step metrics with lr beside learning_rate, and saves as mode/path or version/path', () => {
    expect(toLoopsResult({ kind: 'optim_step' }, { step: 3, learning_rate: 1e-4, grad_norm: 0.8 })).toEqual({
      metrics: { step: 3, learning_rate: 1e-4, lr: 1e-4, grad_norm: 0.8 },
    });
    const saved = { step: 3, policy_version: 3, files: [{ name: 'adapter_model.safetensors', size_bytes: 10 }], lora_config: { r: 8, lora_alpha: 32, target_modules: ['q_proj'] } };
    expect(toLoopsResult({ kind: 'save', what: 'state' }, { ...saved, path: 'bt://loops:r1/weights/s3' })).toEqual({
      mode: '',
      path: 'bt://loops:r1/weights/s3',
    });
    expect(toLoopsResult({ kind: 'save', what: 'sampler' }, { ...saved, path: 'bt://loops:r1/sampler_weights/s3' })).toEqual({
      version: 3,
      path: 'bt://loops:r1/sampler_weights/s3',
    });
    expect(toLoopsResult({ kind: 'init' }, { step: 0, lora_rank: 8 })).toEqual({ step: 0, lora_rank: 8 });
  });
});

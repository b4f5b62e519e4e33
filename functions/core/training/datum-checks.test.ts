import { describe, expect, it } from 'vitest';
import type { TrainerDatum } from '#schemas/trainer.ts';
import { ValidationError } from '../errors.ts';
import { assertTrainerData } from './datum-checks.ts';

const tensor = (data: number[], shape: number[], dtype: 'int64' | 'float32' = 'float32') => ({ data, dtype, shape });
const datum = (inputs: TrainerDatum['loss_fn_inputs']): TrainerDatum => ({ tokens: [1, 2, 3], loss_fn_inputs: { target_tokens: tensor([2, 3, 4], [3], 'int64'), ...inputs } });

describe('assertTrainerData', () => {
  it('accepts inputs as long as the tokens, (N, K) soft targets, and a per-datum advantage of shape [1]', () => {
    expect(() => assertTrainerData([datum({ weights: tensor([0, 1, 1], [3]) })], 'cross_entropy')).not.toThrow();
    expect(() => assertTrainerData([datum({ target_tokens: tensor([2, 9, 3, 9, 4, 9], [3, 2], 'int64'), weights: tensor([1, 0, 1, 0, 1, 0], [3, 2]) })], 'cross_entropy')).not.toThrow();
    expect(() => assertTrainerData([datum({ logprobs: tensor([0, 0, 0], [3]), advantages: tensor([0.5], [1]) })], 'ppo')).not.toThrow();
  });

  it('names the datum and input of the first problem', () => {
    expect(() => assertTrainerData([datum({}), datum({ weights: tensor([1, 1, 1, 1], [4]) })], 'cross_entropy')).toThrow(
      /^data\.1\.loss_fn_inputs\.weights: must be as long as model_input \(3 tokens/,
    );
    expect(() => assertTrainerData([datum({ weights: tensor([1, 1], [3]) })], 'cross_entropy')).toThrow(ValidationError);
    expect(() => assertTrainerData([datum({ weights: tensor([1, 1], [3]) })], 'cross_entropy')).toThrow(/weights: shape \[3\] holds 3 values, but data has 2/);
    expect(() => assertTrainerData([datum({ logprobs: tensor([0, 0, 0], [3]) })], 'cispo')).toThrow(/data\.0\.loss_fn_inputs: cispo needs advantages/);
  });

  it('needs dpo rows in chosen/rejected pairs, each with weights and ref_logprobs', () => {
    const row = datum({ weights: tensor([0, 1, 1], [3]), ref_logprobs: tensor([-1, -1, 0], [3]) });
    expect(() => assertTrainerData([row, row], 'dpo')).not.toThrow();
    expect(() => assertTrainerData([row], 'dpo')).toThrow(/dpo needs chosen and rejected rows in pairs, but 1 datums were sent; send each chosen datum followed by its rejected one\.$/);
    expect(() => assertTrainerData([row, datum({ weights: tensor([0, 1, 1], [3]) })], 'dpo')).toThrow(/dpo needs ref_logprobs/);
  });
});

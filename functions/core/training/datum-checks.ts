/**
 * Checks on a forward's data that either front can make before an operation is accepted, so that
 * a malformed batch fails at submit with a sentence rather than later inside the trainer. The
 * engine checks again; these only move the common mistakes to where the client sees them at once.
 */
import type { LossFn, TrainerDatum } from '../../schemas/trainer.ts';
import { ValidationError } from '../errors.ts';

/** The `loss_fn_inputs` each loss reads (loops-api.md §2.8, loops-data-plane.md §8.3); `weights` is optional except for dpo. */
export const LOSS_INPUTS: Record<LossFn, readonly string[]> = {
  cross_entropy: ['target_tokens'],
  importance_sampling: ['target_tokens', 'logprobs', 'advantages'],
  ppo: ['target_tokens', 'logprobs', 'advantages'],
  cispo: ['target_tokens', 'logprobs', 'advantages'],
  dro: ['target_tokens', 'logprobs', 'advantages'],
  dpo: ['target_tokens', 'weights', 'ref_logprobs'],
};

/**
 * Every tensor's data fills its shape; every input is as long as its datum's tokens (position i
 * predicts target i), except a per-datum `advantages` of shape [1]; each loss has its inputs; dpo
 * pairs come whole. Throws ValidationError naming the first problem as `data.<i>.…`.
 */
export function assertTrainerData(data: readonly TrainerDatum[], lossFn: LossFn): void {
  if (lossFn === 'dpo' && data.length % 2 !== 0) {
    throw new ValidationError(`data: dpo needs chosen and rejected rows in pairs, but ${data.length} datums were sent; send each chosen datum followed by its rejected one.`);
  }
  data.forEach((datum, index) => {
    const at = `data.${index}.loss_fn_inputs`;
    for (const name of LOSS_INPUTS[lossFn]) {
      if (!datum.loss_fn_inputs[name]) throw new ValidationError(`${at}: ${lossFn} needs ${name}; add it to every datum, or choose a loss that does not use it.`);
    }
    for (const [name, tensor] of Object.entries(datum.loss_fn_inputs)) {
      const cells = tensor.shape.reduce((product, size) => product * size, 1);
      if (cells !== tensor.data.length) {
        throw new ValidationError(`${at}.${name}: shape [${tensor.shape.join(', ')}] holds ${cells} values, but data has ${tensor.data.length}; send as many values as the shape holds.`);
      }
      const perDatum = name === 'advantages' && tensor.shape.length === 1 && tensor.shape[0] === 1;
      if (!perDatum && tensor.shape[0] !== datum.tokens.length) {
        throw new ValidationError(
          `${at}.${name}: must be as long as model_input (${datum.tokens.length} tokens, position i predicting target i), but its shape is [${tensor.shape.join(', ')}]; give it one entry per token.`,
        );
      }
    }
  });
}

import { createHash } from 'node:crypto';
import type { Generator } from '../schemas/bread.ts';
import { InvalidInputError } from './errors.ts';

/**
 * Datasets the engine ships for `from_dataset` generators. What else a `dataset` may name depends
 * on the caller (their uploads) and the deployment (allowed URI prefixes): DatasetService checks it.
 */
export const SHIPPED_DATASETS = ['squad', 'gsm8k', 'mmlu', 'hellaswag', 'code_contests', 'math_problems'] as const;

/** Checks one generator against its type's rules (bread-api.md §5.5) and fills its defaults. */
export function normaliseGenerator(generator: Generator, index: number): Generator {
  const fail = (reason: string) => new InvalidInputError(`Invalid generator ${index} (${generator.type}): ${reason}`);
  const out: Generator = { ...generator };
  switch (generator.type) {
    case 'hardcoded': {
      const questions = generator.questions ?? [];
      if (questions.length === 0) throw fail('questions must be a non-empty list');
      if (generator.numq != null && generator.numq > questions.length) {
        throw fail(`numq (${generator.numq}) exceeds the number of questions (${questions.length})`);
      }
      out.numq = generator.numq ?? questions.length;
      break;
    }
    case 'from_dataset': {
      if (!generator.dataset) throw fail('dataset is required');
      requireNumq(generator, fail);
      break;
    }
    case 'oneshot_qs':
    case 'persona':
      requireNumq(generator, fail);
      break;
    case 'custom':
      requireNumq(generator, fail);
      if (!generator.template_path && !generator.template_content) throw fail('template_path or template_content is required');
      break;
  }
  if (generator.template_content || generator.template_path) out.template_path = templatePath(generator);
  return out;
}

function requireNumq(generator: Generator, fail: (reason: string) => Error): void {
  if (generator.numq == null) throw fail('numq is required');
}

/** Templates live under `templates/`; uploaded content without a path is named by its hash. */
function templatePath(generator: Generator): string {
  const file = generator.template_path?.split('/').pop();
  if (file) return `templates/${file}`;
  const digest = createHash('sha256').update(generator.template_content ?? '').digest('hex').slice(0, 16);
  return `templates/template_${digest}.txt`;
}

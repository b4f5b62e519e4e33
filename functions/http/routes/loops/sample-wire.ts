/**
 * The Loops `/sample` wire (loops-data-plane.md §9.2–§9.3) to and from the sampling service's
 * neutral request and result (functions/schemas/relay.ts). Pure functions; input problems throw ValidationError (422 + `06`).
 */
import { ValidationError } from '#core/errors.ts';
import type { Completion, PromptLogprobEntry, SampleRequest } from '#schemas/loops.ts';
import type { SampleRequest as NeutralSampleRequest, SampleResult } from '#schemas/relay.ts';

export function toSampleRequest(body: SampleRequest): NeutralSampleRequest {
  if (body.model_input_chunks != null) throw new ValidationError('model_input_chunks: image prompts are not supported; send token ids in prompt');
  if (body.structured_outputs != null) throw new ValidationError('structured_outputs: structured outputs are not supported; leave it out');
  return {
    prompt_tokens: body.prompt,
    n: body.n,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k ?? 0,
    max_tokens: body.max_tokens ?? null,
    seed: body.seed ?? null,
    stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? []),
    stop_token_ids: body.stop_token_ids ?? [],
    prompt_logprobs: body.prompt_logprobs ?? null,
  };
}

/**
 * vLLM's prompt log-probs: entry 0 is null (nothing predicts the first token); every other entry
 * holds the actual token, with its rank when it is among the top k, and the k alternatives.
 */
function promptLogprobEntries(result: SampleResult): PromptLogprobEntry[] | undefined {
  const { prompt_logprobs: logprobs, topk_prompt_logprobs: topk, prompt_tokens: tokens } = result;
  if (!logprobs) return undefined;
  return tokens.map((token, position) => {
    const logprob = logprobs[position];
    if (position === 0 || logprob === null || logprob === undefined) return null;
    const entry: NonNullable<PromptLogprobEntry> = {};
    (topk?.[position] ?? []).forEach(([id, alternative], index) => {
      entry[String(id)] = { logprob: alternative, rank: index + 1 };
    });
    entry[String(token)] = { ...entry[String(token)], logprob };
    return entry;
  });
}

/** The completions-shaped answer the SDK parses (`_parse_completions`). */
export function toCompletion(operationId: string, model: string, created: number, result: SampleResult): Completion {
  const promptLogprobs = promptLogprobEntries(result);
  const completionTokens = result.sequences.reduce((total, sequence) => total + sequence.tokens.length, 0);
  return {
    id: `cmpl-${operationId}`,
    object: 'text_completion',
    created,
    model,
    choices: result.sequences.map((sequence, index) => ({
      index,
      token_ids: sequence.tokens,
      logprobs: { token_logprobs: sequence.logprobs },
      finish_reason: sequence.finish_reason,
      prompt_token_ids: result.prompt_tokens,
      ...(promptLogprobs ? { prompt_logprobs: promptLogprobs } : {}),
    })),
    usage: { prompt_tokens: result.prompt_tokens.length, completion_tokens: completionTokens, total_tokens: result.prompt_tokens.length + completionTokens },
  };
}

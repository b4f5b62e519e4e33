/**
 * The Loops `/sample` wire (loops-data-plane.md §9.2–§9.3) to and from the sampling service's
 * neutral request and result (functions/schemas/relay.ts). Pure functions; input problems throw
 * ValidationError (422 + `06`).
 */
import { ValidationError } from '#core/errors.ts';
import type { SampleRequest } from '#schemas/loops.ts';
import type { SampleRequest as NeutralSampleRequest, SampleResult } from '#schemas/relay.ts';

/**
 * One prompt position's log-probs as vLLM's `{"<token_id>": {logprob, rank?}}` object, held as
 * ordered pairs: the SDK reads the object's entries in order as the top k, so the top k come first
 * by rank, then the actual token when it is not among them.
 */
export type PromptLogprobEntry = [tokenId: number, value: { logprob: number; rank?: number }][];

/** The completions-shaped answer the SDK parses (`_parse_completions`). */
export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: {
    index: number;
    token_ids: number[];
    logprobs: { token_logprobs: number[] };
    finish_reason: 'stop' | 'length';
    prompt_token_ids: number[];
    prompt_logprobs?: (PromptLogprobEntry | null)[];
  }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

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

/** vLLM's prompt log-probs: entry 0 is null (nothing predicts the first token); every other entry holds the actual token. */
function promptLogprobEntries(result: SampleResult): (PromptLogprobEntry | null)[] | undefined {
  const { prompt_logprobs: logprobs, topk_prompt_logprobs: topk, prompt_tokens: tokens } = result;
  if (!logprobs) return undefined;
  return tokens.map((token, position) => {
    const logprob = logprobs[position];
    if (position === 0 || logprob === null || logprob === undefined) return null;
    const entry: PromptLogprobEntry = (topk?.[position] ?? []).map(([id, alternative], index) => [id, { logprob: alternative, rank: index + 1 }]);
    const actual = entry.find(([id]) => id === token);
    if (actual) actual[1].logprob = logprob;
    else entry.push([token, { logprob }]);
    return entry;
  });
}

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

/**
 * JSON text of a value holding a completion, with each prompt log-prob entry written as an object
 * in its own order: JSON.stringify would put an object's integer-like keys (token ids) in numeric
 * order and lose the ranking. Each list is stood in for by a marker no field of a completion holds
 * (NUL, index, NUL), then written in its place.
 */
export function completionJson(value: unknown): string {
  const lists: string[] = [];
  const text = JSON.stringify(value, (key, field: unknown) => {
    if (key !== 'prompt_logprobs' || !Array.isArray(field)) return field;
    lists.push(`[${(field as (PromptLogprobEntry | null)[]).map(entryJson).join(',')}]`);
    return `\u0000${lists.length - 1}\u0000`;
  });
  return text.replace(/"\\u0000(\d+)\\u0000"/g, (_marker, index: string) => lists[Number(index)]!);
}

function entryJson(entry: PromptLogprobEntry | null): string {
  return entry === null ? 'null' : `{${entry.map(([id, value]) => `${JSON.stringify(String(id))}:${JSON.stringify(value)}`).join(',')}}`;
}

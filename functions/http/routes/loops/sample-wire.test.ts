import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors.ts';
import { SampleRequest } from '#schemas/loops.ts';
import type { SampleResult } from '#schemas/relay.ts';
import { completionJson, toCompletion, toSampleRequest } from './sample-wire.ts';

describe('toSampleRequest', () => {
  it('takes the SDK body with its defaults: no top_k, no max_tokens, no prompt log-probs', () => {
    const body = SampleRequest.parse({ prompt: [1, 2], n: 1, temperature: 1.0, top_p: 1.0, logprobs: 0, return_tokens_as_token_ids: true, model: 'M', lora: 'bt://loops:r1/sampler_weights/a' });
    expect(toSampleRequest(body)).toEqual({
      prompt_tokens: [1, 2],
      n: 1,
      temperature: 1,
      top_p: 1,
      top_k: 0,
      max_tokens: null,
      seed: null,
      stop: [],
      stop_token_ids: [],
      prompt_logprobs: null,
    });
  });

  it('passes every sampling setting on; a single stop string becomes a list', () => {
    const body = SampleRequest.parse({ prompt: [1], n: 3, temperature: 0.5, top_p: 0.9, top_k: 40, max_tokens: 8, seed: 7, stop: 'END', stop_token_ids: [2], prompt_logprobs: 5 });
    expect(toSampleRequest(body)).toEqual({
      prompt_tokens: [1],
      n: 3,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      max_tokens: 8,
      seed: 7,
      stop: ['END'],
      stop_token_ids: [2],
      prompt_logprobs: 5,
    });
  });

  it('refuses image prompts and structured outputs', () => {
    expect(() => toSampleRequest(SampleRequest.parse({ prompt: [1], model_input_chunks: [{ type: 'image' }] }))).toThrow(ValidationError);
    expect(() => toSampleRequest(SampleRequest.parse({ prompt: [1], structured_outputs: { json: {} } }))).toThrow(/structured outputs are not supported/);
    expect(SampleRequest.safeParse({ prompt: [] }).success).toBe(false);
  });
});

describe('toCompletion', () => {
  const result: SampleResult = {
    sequences: [
      { tokens: [9, 10], logprobs: [-0.1, -1.5], finish_reason: 'length' },
      { tokens: [11], logprobs: [-0.2], finish_reason: 'stop' },
    ],
    prompt_tokens: [4, 5, 6],
    prompt_logprobs: null,
    topk_prompt_logprobs: null,
  };

  it('answers in the completions shape the SDK parses, one choice per sequence', () => {
    expect(toCompletion('op1', 'M', 1767225600, result)).toEqual({
      id: 'cmpl-op1',
      object: 'text_completion',
      created: 1767225600,
      model: 'M',
      choices: [
        { index: 0, token_ids: [9, 10], logprobs: { token_logprobs: [-0.1, -1.5] }, finish_reason: 'length', prompt_token_ids: [4, 5, 6] },
        { index: 1, token_ids: [11], logprobs: { token_logprobs: [-0.2] }, finish_reason: 'stop', prompt_token_ids: [4, 5, 6] },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 },
    });
  });

  it('writes prompt log-probs in vLLM’s form: entry 0 null, the top k by rank, then the actual token when it is not among them', () => {
    const withPrompt: SampleResult = {
      ...result,
      prompt_logprobs: [null, -3.2, -0.5],
      topk_prompt_logprobs: [
        null,
        [
          [7, -0.4],
          [5, -3.2],
        ],
        [[8, -0.1]],
      ],
    };
    expect(toCompletion('op1', 'M', 0, withPrompt).choices[0]!.prompt_logprobs).toEqual([
      null,
      [
        [7, { logprob: -0.4, rank: 1 }],
        [5, { logprob: -3.2, rank: 2 }],
      ],
      [
        [8, { logprob: -0.1, rank: 1 }],
        [6, { logprob: -0.5 }],
      ],
    ]);
    const actualOnly: SampleResult = { ...result, prompt_logprobs: [null, -3.2, -0.5], topk_prompt_logprobs: null };
    expect(toCompletion('op1', 'M', 0, actualOnly).choices[0]!.prompt_logprobs).toEqual([null, [[5, { logprob: -3.2 }]], [[6, { logprob: -0.5 }]]]);
  });

  it('writes each entry as an object whose keys keep their rank order, which JSON.stringify alone would sort by token id', () => {
    const withPrompt: SampleResult = { ...result, sequences: [result.sequences[0]!], prompt_logprobs: [null, -3.2, -0.5], topk_prompt_logprobs: [null, [[7, -0.4], [5, -3.2]], [[8, -0.1]]] };
    const text = completionJson({ status: 'done', result: toCompletion('op1', 'M', 0, withPrompt) });
    expect(text).toContain('"prompt_logprobs":[null,{"7":{"logprob":-0.4,"rank":1},"5":{"logprob":-3.2,"rank":2}},{"8":{"logprob":-0.1,"rank":1},"6":{"logprob":-0.5}}]');
    const parsed = JSON.parse(text);
    expect(parsed.result.choices[0].token_ids).toEqual([9, 10]);
    expect(parsed.result.id).toBe('cmpl-op1');
    expect(JSON.parse(completionJson({ status: 'done', result: toCompletion('op1', 'M', 0, result) }))).toEqual({ status: 'done', result: toCompletion('op1', 'M', 0, result) });
  });
});

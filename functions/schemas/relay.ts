/**
 * The relay between the API and a long-running sampler job (DESIGN.md §1). Batch jobs accept no
 * inbound connections, so the sampler calls out: it long-polls the API for the requests queued
 * for its base model (chat messages, or token ids for the training protocols' sampling) and posts each answer back as numbered chunks, which the API stores for the
 * chat route to stream. Both routes take `Authorization: Bearer <relay_token>` from the job spec.
 *
 * - `POST /v1/relay/samplers/{job_id}/next` — RelayNextRequest → RelayNextResponse (200; the list
 *   is empty when nothing arrived within `wait_s`). Requests are handed out oldest first, each once;
 *   a sampler asks again only when it is done with what it took. A request it took but never
 *   answered by then (the hand-out was lost) is handed out again under a new `id`.
 * - `POST /v1/relay/samplers/{job_id}/requests/{request_id}/chunks` — RelayChunk → RelayChunkAck.
 *   `seq` counts from 0 per request; a chunk posted twice (a retry) is stored once. The chunk with
 *   `done`, `sampled` or `error` is the last one. A chat request streams text in `deltas`; a
 *   token-level request is answered by one chunk with `sampled` (or `error`).
 *
 * A 401 means the token is wrong; a 410 that the job is no longer the active sampler (it should exit).
 */
import { z } from 'zod';
import { Message } from './bread.ts';
import { ModelSpec } from './job-spec.ts';

export const RelayNextRequest = z
  .object({
    wait_s: z.number().min(0).max(30).meta({ description: 'How long to wait for a request before answering with none' }),
    max: z.number().int().min(1).max(64).meta({ description: 'Most requests to hand out at once' }),
  })
  .meta({ id: 'RelayNextRequest' });

export const SamplingParams = z
  .object({
    n: z.number().int().min(1).max(16),
    temperature: z.number().min(0).max(2),
    top_p: z.number().gt(0).max(1),
    max_tokens: z.number().int().min(1).nullable().meta({ description: "Unset: up to the model's context" }),
    stop: z.array(z.string().min(1)).max(4).meta({ description: 'The reply ends before the first of these' }),
    seed: z.number().int().nullable().meta({ description: 'Choice i samples from a stream seeded by (seed, i); unset: random' }),
    chat_template_kwargs: z.looseObject({}).meta({ description: 'Passed to the chat template, e.g. {"enable_thinking": false}' }),
  })
  .meta({ id: 'SamplingParams' });
export type SamplingParams = z.infer<typeof SamplingParams>;

export const ChatSamplerRequest = z
  .object({
    kind: z.literal('chat'),
    id: z.string().min(1),
    model: ModelSpec.meta({ description: "The sampler's base model with the checkpoint's adapter chain, root first" }),
    messages: z.array(Message).min(1),
    tools: z.array(z.looseObject({})).nullable(),
    params: SamplingParams,
  })
  .meta({ id: 'ChatSamplerRequest' });
export type ChatSamplerRequest = z.infer<typeof ChatSamplerRequest>;

/**
 * Token-level sampling (the Loops `/sample` and Tinker `asample` operations): token ids in, token
 * ids and their log-probs out. Log-probs are raw: log_softmax of the model's logits, never of the
 * tempered or truncated distribution a token was drawn from.
 *
 * A sequence ends with 'stop' at an end-of-sequence token, a `stop_token_ids` token, or once its
 * decoded text contains a `stop` string; as in vLLM, `tokens` keeps every token generated, the one
 * that ended it included (the stop string's tokens too), each with its log-prob.
 */
export const SampleRequest = z
  .object({
    prompt_tokens: z.array(z.number().int().min(0)).min(1),
    n: z.number().int().min(1).max(64).meta({ description: 'Sequences to sample from the one prompt' }),
    temperature: z.number().min(0).meta({ description: '0: greedy' }),
    top_p: z.number().gt(0).max(1),
    top_k: z.number().int().min(0).meta({ description: '0: off' }),
    max_tokens: z.number().int().min(1).nullable().meta({ description: "Unset: up to the model's remaining context, at most 4096" }),
    seed: z.number().int().nullable().meta({ description: 'Sequence i samples from a stream seeded by (seed, i); unset: random' }),
    stop: z.array(z.string().min(1)).max(16),
    stop_token_ids: z.array(z.number().int().min(0)).max(64),
    prompt_logprobs: z
      .number()
      .int()
      .min(0)
      .max(20)
      .nullable()
      .meta({ description: "k: each prompt token's log-prob and, when k > 0, the top k at each position; null: none" }),
  })
  .meta({ id: 'SampleRequest' });
export type SampleRequest = z.infer<typeof SampleRequest>;

export const TokenSamplerRequest = z
  .object({
    kind: z.literal('tokens'),
    id: z.string().min(1),
    model: ModelSpec.meta({ description: "The sampler's base model with the checkpoint's adapter chain, root first" }),
    sample: SampleRequest,
  })
  .meta({ id: 'TokenSamplerRequest' });
export type TokenSamplerRequest = z.infer<typeof TokenSamplerRequest>;

export const SamplerRequest = z.discriminatedUnion('kind', [ChatSamplerRequest, TokenSamplerRequest]).meta({ id: 'SamplerRequest' });
export type SamplerRequest = z.infer<typeof SamplerRequest>;

/** What a token-level request answers: one chunk carrying it (and no deltas). */
export const SampleResult = z
  .object({
    sequences: z
      .array(
        z.object({
          tokens: z.array(z.number().int().min(0)),
          logprobs: z.array(z.number()).meta({ description: 'One per token: its raw log-prob' }),
          finish_reason: z.enum(['stop', 'length']),
        }),
      )
      .min(1),
    prompt_tokens: z.array(z.number().int().min(0)),
    prompt_logprobs: z
      .array(z.number().nullable())
      .nullable()
      .meta({ description: "One per prompt token, null at position 0 (nothing precedes it); null unless asked for" }),
    topk_prompt_logprobs: z
      .array(z.array(z.tuple([z.number().int().min(0), z.number()])).nullable())
      .nullable()
      .meta({ description: 'Per prompt position the top k [token_id, logprob] pairs, most likely first, null at position 0; null unless k > 0' }),
  })
  .meta({ id: 'SampleResult' });
export type SampleResult = z.infer<typeof SampleResult>;

export const RelayNextResponse = z.object({ requests: z.array(SamplerRequest) }).meta({ id: 'RelayNextResponse' });

export const FinishReason = z.enum(['stop', 'length', 'tool_calls']);

export const ToolCall = z
  .object({
    id: z.string(),
    type: z.literal('function'),
    function: z.object({ name: z.string(), arguments: z.string().meta({ description: 'JSON text' }) }),
  })
  .meta({ id: 'ToolCall' });

export const RelayChunk = z
  .object({
    seq: z.number().int().min(0),
    deltas: z.array(z.object({ index: z.number().int().min(0), content: z.string() })).meta({ description: 'New text per choice' }),
    done: z
      .object({
        choices: z
          .array(
            z.object({
              index: z.number().int().min(0),
              finish_reason: FinishReason,
              tool_calls: z.array(ToolCall).nullable().meta({ description: 'Calls parsed from the reply; their markup is never sent as text' }),
            }),
          )
          .min(1),
        usage: z.object({ prompt_tokens: z.number().int().min(0), completion_tokens: z.number().int().min(0) }),
      })
      .nullable(),
    sampled: SampleResult.nullable()
      .optional()
      .meta({ description: "A token-level request's answer; absent from a chat request's chunks" }),
    error: z.string().nullable().meta({ description: 'The request failed: a sentence the caller can act on' }),
  })
  .meta({ id: 'RelayChunk' });
export type RelayChunk = z.infer<typeof RelayChunk>;

export const RelayChunkAck = z
  .object({
    cancelled: z.boolean().meta({ description: 'Nobody waits for this answer any more (or it was handed out again): stop generating it' }),
  })
  .meta({ id: 'RelayChunkAck' });

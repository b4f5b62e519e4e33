/**
 * The OpenAI-compatible inference routes (bread-api.md §15): request bodies as OpenAI clients
 * send them, and the reply shapes they parse. Unknown keys are accepted and ignored, as OpenAI
 * servers do for fields they do not implement.
 */
import { z } from 'zod';
import { FinishReason, ToolCall } from './relay.ts';

const TextPart = z.looseObject({ type: z.literal('text'), text: z.string() });

export const ChatMessage = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(TextPart)]).nullish(),
  name: z.string().optional(),
  tool_calls: z.array(z.looseObject({})).optional(),
  tool_call_id: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

const TemplateKwargs = z.looseObject({}).meta({ description: 'Passed to the chat template, e.g. {"enable_thinking": false}' });

export const ChatCompletionRequest = z
  .looseObject({
  model: z.string().min(1),
  messages: z.array(ChatMessage).min(1),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  tools: z.array(z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string() }) })).nullish(),
  chat_template_kwargs: TemplateKwargs.nullish(),
  /** The Bread helper script sends a literal `extra_body` object (bread-api.md §15). */
  extra_body: z.looseObject({ chat_template_kwargs: TemplateKwargs.nullish() }).nullish(),
  })
  .meta({ id: 'ChatCompletionRequest' });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

const Usage = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() });

export const ChatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string().meta({ description: 'The model that answered: `repo/bake` is reported as the checkpoint it resolved to' }),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({ role: z.literal('assistant'), content: z.string(), tool_calls: z.array(ToolCall).optional() }),
        logprobs: z.null(),
        finish_reason: FinishReason,
      }),
    ),
    usage: Usage,
  })
  .meta({ id: 'ChatCompletion' });
export type ChatCompletion = z.infer<typeof ChatCompletion>;

export const ChatCompletionChunk = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion.chunk'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        delta: z.object({
          role: z.literal('assistant').optional(),
          content: z.string().optional(),
          tool_calls: z.array(ToolCall.extend({ index: z.number().int() })).optional(),
        }),
        logprobs: z.null(),
        finish_reason: FinishReason.nullable(),
      }),
    ),
    usage: Usage.optional().meta({ description: 'Only in the last chunk before `[DONE]`, with `stream_options.include_usage`' }),
  })
  .meta({ id: 'ChatCompletionChunk', description: 'One `data:` line of a streamed reply; the stream ends with `data: [DONE]`' });
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunk>;

/** OpenAI's error envelope, used on the inference routes because their clients are OpenAI clients. */
export const OpenAiError = z
  .object({ error: z.object({ message: z.string(), type: z.string(), code: z.string().nullable(), param: z.string().nullable() }) })
  .meta({ id: 'OpenAiError' });
export type OpenAiError = z.infer<typeof OpenAiError>;

export const ModelCard = z
  .object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string().meta({ description: 'The owning user; `bakehouse` for base models' }) })
  .meta({ id: 'ModelCard' });
export type ModelCard = z.infer<typeof ModelCard>;

export const ModelList = z.object({ object: z.literal('list'), data: z.array(ModelCard) }).meta({ id: 'ModelList' });

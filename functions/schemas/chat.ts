/**
 * The OpenAI-compatible inference routes (bread-api.md §15): request bodies as OpenAI clients
 * send them, and the reply shapes they parse. Unknown keys are accepted and ignored, as OpenAI
 * servers do for fields they do not implement.
 */
import { z } from 'zod';

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

export const ChatCompletionRequest = z.looseObject({
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
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

/** OpenAI's error envelope, used on the inference routes because their clients are OpenAI clients. */
export interface OpenAiError {
  error: { message: string; type: string; code: string | null; param: string | null };
}

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

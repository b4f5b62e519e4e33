import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ChatTicket } from '#core/chat/chat-service.ts';
import { DomainError, InvalidInputError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelList, OpenAiError } from '#schemas/chat.ts';
import type { RelayChunk } from '#schemas/relay.ts';
import type { AppEnv } from '../env.ts';
import { bearer, type App } from '../openapi.ts';

export interface ChatRouteOptions {
  /** Where samplers reach this API; unset, the origin each chat request arrived at. */
  relayUrl?: string;
  /** How often a stream with nothing to say sends an SSE comment, so proxies keep it open; default 15 s. */
  keepAliveMs?: number;
}

type FinishedChoice = NonNullable<RelayChunk['done']>['choices'][number];

/**
 * The OpenAI-compatible inference routes (bread-api.md §15). Replies are never stored for
 * idempotent replay (`no-store`): a repeated request is a new sample.
 */
export function chatRoutes(app: App, services: Services, options: ChatRouteOptions): void {
  documentRoutes(app);
  app.get('/v1/models', async (c) => c.json({ object: 'list', data: await services.chat.listModels(c.get('actor')) }));

  app.post('/v1/chat/completions', async (c) => {
    const parsed = ChatCompletionRequest.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidInputError(issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'Invalid request body');
    }
    const body = parsed.data;
    const ticket = await services.chat.submit(c.get('actor'), body, options.relayUrl ?? new URL(c.req.url).origin);
    c.header('cache-control', 'no-store');
    const includeUsage = body.stream_options?.include_usage === true;
    return body.stream ? streamReply(c, services, ticket, includeUsage, options.keepAliveMs ?? 15_000) : c.json(await wholeReply(services, ticket));
  });
}

const openAiError = (description: string) => ({ description, content: { 'application/json': { schema: OpenAiError } } });

/** Documented by hand: the handlers parse their own bodies, so that a bad one gets OpenAI's error shape rather than the router's 422. */
function documentRoutes(app: App): void {
  const tags = ['Chat (OpenAI-compatible)'];
  app.openAPIRegistry.registerPath({
    method: 'post',
    path: '/v1/chat/completions',
    tags,
    security: bearer,
    summary: 'Chat with a base model or a baked checkpoint (`user/repo/bake/step`, or `repo/bake` for the newest)',
    request: { body: { required: true, content: { 'application/json': { schema: ChatCompletionRequest } } } },
    responses: {
      200: {
        description: 'The reply; with `stream: true`, server-sent events of ChatCompletionChunk ending with `data: [DONE]`',
        content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: ChatCompletionChunk } },
      },
      400: openAiError('Invalid body'),
      401: openAiError('Missing or invalid API key'),
      404: openAiError('Unknown model, or one the caller cannot use'),
      413: openAiError('Body too large'),
      422: openAiError('Body nested too deep'),
      503: openAiError('No sampler answered in time, or it stopped; retry'),
    },
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/v1/models',
    tags,
    security: bearer,
    summary: "The base models and the caller's servable checkpoints",
    responses: { 200: { description: 'The models', content: { 'application/json': { schema: ModelList } } }, 401: openAiError('Missing or invalid API key') },
  });
}

/** A non-streamed reply, whole: also what the MCP `chat` tool answers (routes/mcp.ts). */
export async function wholeReply(services: Services, ticket: ChatTicket): Promise<ChatCompletion> {
  const texts: string[] = [];
  for await (const chunk of services.chat.replies(ticket)) {
    if (chunk.error !== null) throw new InvalidInputError(chunk.error);
    for (const { index, content } of chunk.deltas) texts[index] = (texts[index] ?? '') + content;
    if (!chunk.done) continue;
    const { choices, usage } = chunk.done;
    return {
      id: ticket.id,
      object: 'chat.completion',
      created: ticket.created,
      model: ticket.model,
      choices: choices.map((choice) => ({
        index: choice.index,
        message: { role: 'assistant', content: texts[choice.index] ?? '', ...messageToolCalls(choice) },
        logprobs: null,
        finish_reason: choice.finish_reason,
      })),
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    };
  }
  throw new Error(`The reply to ${ticket.id} ended without its last chunk`);
}

/** SSE in OpenAI's chunk format: a role delta, content deltas, a finish per choice, then `[DONE]`. */
function streamReply(c: Context<AppEnv>, services: Services, ticket: ChatTicket, includeUsage: boolean, keepAliveMs: number) {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    // A cold sampler may take minutes to say anything (a GPU job starting on AWS).
    const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => undefined), keepAliveMs);
    const frame = (choices: ChatCompletionChunk['choices'], extra: Pick<ChatCompletionChunk, 'usage'> = {}) => {
      const chunk: ChatCompletionChunk = { id: ticket.id, object: 'chat.completion.chunk', created: ticket.created, model: ticket.model, choices, ...extra };
      return stream.writeSSE({ data: JSON.stringify(chunk) });
    };
    const started = new Set<number>();
    try {
      for await (const chunk of services.chat.replies(ticket, abort.signal)) {
        if (chunk.error !== null) throw new InvalidInputError(chunk.error);
        for (const { index, content } of chunk.deltas) {
          const role = started.has(index) ? {} : { role: 'assistant' as const };
          started.add(index);
          await frame([{ index, delta: { ...role, content }, logprobs: null, finish_reason: null }]);
        }
        if (!chunk.done) continue;
        for (const choice of chunk.done.choices) {
          const role = started.has(choice.index) ? {} : { role: 'assistant' as const, content: '' };
          await frame([{ index: choice.index, delta: { ...role, ...deltaToolCalls(choice) }, logprobs: null, finish_reason: choice.finish_reason }]);
        }
        const { usage } = chunk.done;
        if (includeUsage) await frame([], { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } });
        await stream.writeSSE({ data: '[DONE]' });
      }
    } catch (error) {
      // The status line is gone; OpenAI clients raise an `error` event as an API error.
      const message = error instanceof DomainError ? error.message : 'Internal server error';
      if (!(error instanceof DomainError)) console.error(JSON.stringify({ level: 'error', msg: 'chat stream failed', error: String(error) }));
      await stream.writeSSE({ data: JSON.stringify({ error: { message, type: 'server_error', code: null, param: null } }) });
    } finally {
      clearInterval(keepAlive);
    }
  });
}

/** Tool calls as OpenAI puts them on a whole message… */
function messageToolCalls(choice: FinishedChoice) {
  return choice.tool_calls ? { tool_calls: choice.tool_calls } : {};
}

/** …and, indexed, in a streamed delta. */
function deltaToolCalls(choice: FinishedChoice) {
  return choice.tool_calls ? { tool_calls: choice.tool_calls.map((call, index) => ({ index, ...call })) } : {};
}

import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ChatTicket } from '#core/chat/chat-service.ts';
import { DomainError, InvalidInputError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { ChatCompletionRequest } from '#schemas/chat.ts';
import type { RelayChunk } from '#schemas/relay.ts';
import type { AppEnv } from '../env.ts';
import type { App } from '../openapi.ts';

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

async function wholeReply(services: Services, ticket: ChatTicket) {
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
        message: { role: 'assistant', content: texts[choice.index] ?? '', ...toolCalls(choice) },
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
    const frame = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      stream.writeSSE({
        data: JSON.stringify({ id: ticket.id, object: 'chat.completion.chunk', created: ticket.created, model: ticket.model, choices, ...extra }),
      });
    const started = new Set<number>();
    try {
      for await (const chunk of services.chat.replies(ticket, abort.signal)) {
        if (chunk.error !== null) throw new InvalidInputError(chunk.error);
        for (const { index, content } of chunk.deltas) {
          const role = started.has(index) ? {} : { role: 'assistant' };
          started.add(index);
          await frame([{ index, delta: { ...role, content }, logprobs: null, finish_reason: null }]);
        }
        if (!chunk.done) continue;
        for (const choice of chunk.done.choices) {
          const role = started.has(choice.index) ? {} : { role: 'assistant', content: '' };
          await frame([{ index: choice.index, delta: { ...role, ...toolCalls(choice, true) }, logprobs: null, finish_reason: choice.finish_reason }]);
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

/** Tool calls as OpenAI puts them: whole on the message, or indexed in a streamed delta. */
function toolCalls(choice: FinishedChoice, streamed = false) {
  if (!choice.tool_calls) return {};
  return { tool_calls: streamed ? choice.tool_calls.map((call, index) => ({ index, ...call })) : choice.tool_calls };
}

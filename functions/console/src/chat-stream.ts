import { ApiError, type Api } from './api.ts';
import type { Message } from './types.ts';

interface ChunkEvent {
  choices?: { delta?: { content?: string | null } }[];
  error?: { message?: string };
}

/**
 * A streamed chat completion (`stream: true`, OpenAI's server-sent events): yields each piece of
 * the reply's text as it arrives, and ends at `data: [DONE]`. An error the server reports inside
 * the stream becomes an ApiError with its sentence.
 */
export async function* streamChat(api: Api, model: string, messages: Message[], signal: AbortSignal): AsyncGenerator<string> {
  const response = await api.fetch('POST', '/v1/chat/completions', {
    body: { model, messages, stream: true },
    signal,
    // A cold sampler may take minutes to start; the user stops a stream with its button.
    timeoutMs: null,
  });
  if (!response.body) throw new ApiError('The server sent no reply stream; try again.', response.status);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const events = buffered.split(/\r?\n\r?\n/);
    buffered = events.pop() ?? '';
    for (const event of events) {
      for (const line of event.split(/\r?\n/)) {
        if (!line.startsWith('data:')) continue; // comments keep a quiet stream open
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data) as ChunkEvent;
        if (chunk.error) throw new ApiError(chunk.error.message ?? 'The reply failed; try again.', 200);
        const text = chunk.choices?.[0]?.delta?.content;
        if (text) yield text;
      }
    }
  }
  throw new ApiError('The reply stopped before it was complete; try again.', 0);
}

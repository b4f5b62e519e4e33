/**
 * `npx bakehouse chat <model>`: a multi-turn, streaming chat with a base model or a baked
 * checkpoint through the OpenAI-compatible API (bread-api.md §15), and `npx bakehouse models`.
 *
 * Environment: BAKEHOUSE_BASE_URL (else BREAD_BASE_URL, else http://127.0.0.1:8080) and
 * BAKEHOUSE_API_KEY (else BREAD_API_KEY). `exit`, `quit`, `q` or end of input leave the chat.
 */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';

const USAGE = `Usage:
  bakehouse chat <model> [--system <prompt>] [--temperature <t>] [--max-tokens <n>]
  bakehouse models

<model> is a base model, user/repo/bake/checkpoint, or repo/bake (its newest checkpoint).
Environment: BAKEHOUSE_BASE_URL (or BREAD_BASE_URL), BAKEHOUSE_API_KEY (or BREAD_API_KEY).`;

const LEAVE = new Set(['exit', 'quit', 'q']);

export interface CliIo {
  input: Readable;
  output: Writable;
  error: Writable;
  env: NodeJS.ProcessEnv;
}

export interface ChatOptions {
  model: string;
  system?: string;
  temperature?: number;
  maxTokens?: number;
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      system: { type: 'string' },
      temperature: { type: 'string' },
      'max-tokens': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, model, ...rest] = positionals;
  const valid = (command === 'chat' && model && rest.length === 0) || (command === 'models' && !model);
  if (values.help || !valid) {
    (values.help ? io.output : io.error).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  try {
    const client = clientFromEnv(io.env);
    if (command === 'models') {
      for await (const card of client.models.list()) io.output.write(`${card.id}\n`);
      return 0;
    }
    await chat(client, io, {
      model: model!,
      system: values.system,
      temperature: values.temperature === undefined ? undefined : Number(values.temperature),
      maxTokens: values['max-tokens'] === undefined ? undefined : Number(values['max-tokens']),
    });
    return 0;
  } catch (error) {
    io.error.write(`bakehouse: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

export function clientFromEnv(env: NodeJS.ProcessEnv): OpenAI {
  const baseUrl = env.BAKEHOUSE_BASE_URL || env.BREAD_BASE_URL || 'http://127.0.0.1:8080';
  const apiKey = env.BAKEHOUSE_API_KEY || env.BREAD_API_KEY;
  if (!apiKey) throw new Error('Set BAKEHOUSE_API_KEY (or BREAD_API_KEY) to an API key; `npm start` prints the admin key.');
  return new OpenAI({ baseURL: `${baseUrl.replace(/\/+$/, '')}/v1`, apiKey, maxRetries: 2 });
}

/** Reads a line at a time, streams each answer as it arrives, and keeps the whole conversation. */
export async function chat(client: OpenAI, io: CliIo, options: ChatOptions): Promise<void> {
  const messages: ChatCompletionMessageParam[] = options.system ? [{ role: 'system', content: options.system }] : [];
  const lines = createInterface({ input: io.input, terminal: false });
  const input = lines[Symbol.asyncIterator]();
  io.output.write(`Chatting with ${options.model}. Type exit, quit or q to leave.\n`);
  try {
    for (;;) {
      io.output.write('you> ');
      const { value: line, done } = await input.next();
      if (done || LEAVE.has(line.trim().toLowerCase())) break;
      if (!line.trim()) continue;
      messages.push({ role: 'user', content: line });
      io.output.write('model> ');
      const stream = await client.chat.completions.create({
        model: options.model,
        messages,
        stream: true,
        ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
        ...(options.maxTokens === undefined ? {} : { max_tokens: options.maxTokens }),
      });
      let answer = '';
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta.content ?? '';
        answer += delta;
        io.output.write(delta);
      }
      io.output.write('\n');
      messages.push({ role: 'assistant', content: answer });
    }
  } finally {
    lines.close();
  }
  io.output.write('\n');
}

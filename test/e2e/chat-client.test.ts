/**
 * The official `openai` client and the `bakehouse` chat CLI against the chat routes served over
 * HTTP, with a scripted sampler on the other side of the relay (test/support/fake-sampler.ts).
 * test/e2e/bake.test.ts does the same against the real engine and a baked checkpoint.
 */
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { serve } from '@hono/node-server';
import OpenAI, { NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '#local/chat-cli.ts';
import { ADMIN_KEY, createTestApp, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';

const TOY = 'bakehouse/toy-instruct';
let api: TestApp;
let server: ReturnType<typeof serve>;
let baseUrl: string;
let sampler: { stop(): Promise<void> };

beforeAll(async () => {
  api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
  server = await new Promise((ready) => {
    const started = serve({ fetch: api.app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready(started));
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The first request starts the sampler job; from then on the fake sampler serves every request.
  const first = fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: TOY, messages: [{ role: 'user', content: 'warm up' }] }),
  });
  const fake = await FakeSampler.started(api);
  // Answers with the conversation so far: the number of user turns (`+s` after a system prompt),
  // then the last one shouted.
  sampler = fake.serve((request) => {
    const users = request.messages.filter((message) => message.role === 'user');
    const system = request.messages[0]?.role === 'system' ? '+s' : '';
    return [`${users.length}${system}: `, String(users.at(-1)?.content).toUpperCase()];
  });
  await first;
});

afterAll(async () => {
  await sampler?.stop();
  await new Promise((done) => server?.close(done));
  await api?.close();
});

describe('openai client', () => {
  const client = () => new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: ADMIN_KEY, maxRetries: 0 });

  it('gets a non-streamed reply', async () => {
    const reply = await client().chat.completions.create({ model: TOY, messages: [{ role: 'user', content: 'hi' }] });
    expect(reply.choices[0]?.message.content).toBe('1: HI');
    expect(reply.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('gets a streamed reply', async () => {
    const stream = await client().chat.completions.create({ model: TOY, messages: [{ role: 'user', content: 'hey' }], stream: true });
    const deltas: string[] = [];
    for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '');
    expect(deltas.join('')).toBe('1: HEY');
    expect(deltas.filter(Boolean).length).toBeGreaterThan(1);
  });

  it('lists models and raises NotFoundError for an unknown one', async () => {
    const ids = [];
    for await (const card of client().models.list()) ids.push(card.id);
    expect(ids).toContain(TOY);
    await expect(client().chat.completions.create({ model: 'no/such/model/1', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('bakehouse chat CLI', () => {
  async function run(argv: string[], lines: string[], env: NodeJS.ProcessEnv = { BAKEHOUSE_BASE_URL: baseUrl, BAKEHOUSE_API_KEY: ADMIN_KEY }) {
    const input = new PassThrough();
    const output = new PassThrough();
    const error = new PassThrough();
    const text = { out: '', err: '' };
    output.on('data', (data: Buffer) => (text.out += data.toString()));
    error.on('data', (data: Buffer) => (text.err += data.toString()));
    input.end(lines.map((line) => `${line}\n`).join(''));
    const code = await main(argv, { input, output, error, env });
    return { code, ...text };
  }

  it('keeps a multi-turn conversation, streaming each answer, until quit', async () => {
    const { code, out } = await run(['chat', TOY], ['first question', '', 'second', 'quit', 'never sent']);
    expect(code).toBe(0);
    expect(out).toContain('model> 1: FIRST QUESTION\n');
    expect(out).toContain('model> 2: SECOND\n');
    expect(out).not.toContain('NEVER SENT');
  });

  it.each(['exit', 'q', 'QUIT'])('leaves on %s, and at the end of input', async (word) => {
    expect((await run(['chat', TOY], ['one', word, 'two'])).out).not.toContain('TWO');
    expect((await run(['chat', TOY], ['one'])).code).toBe(0);
  });

  it('sends a system prompt first when given one, and honours BREAD_* variables', async () => {
    const { out } = await run(['chat', TOY, '--system', 'be loud'], ['hello', 'q'], { BREAD_BASE_URL: baseUrl, BREAD_API_KEY: ADMIN_KEY });
    expect(out).toContain('model> 1+s: HELLO');
  });

  it('lists models', async () => {
    const { code, out } = await run(['models'], []);
    expect(code).toBe(0);
    expect(out.split('\n')).toContain(TOY);
  });

  it('explains usage and missing settings, and reports API errors', async () => {
    expect(await run([], [])).toMatchObject({ code: 2, err: expect.stringContaining('Usage:') });
    expect(await run(['chat', TOY], [], {})).toMatchObject({ code: 1, err: expect.stringContaining('BAKEHOUSE_API_KEY') });
    const unknown = await run(['chat', 'no/such/model/1'], ['hi']);
    expect(unknown).toMatchObject({ code: 1, err: expect.stringContaining('does not exist') });
  });
});

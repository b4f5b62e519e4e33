import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keys } from '#core/keys.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { completeBake, createBake, createTestApp, createUserKey, seedTarget, type ApiResponse, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';
import { sseData } from '../support/sse.ts';

const TOY = 'bakehouse/toy-instruct';
const chat = (body: Record<string, unknown>) => ({ body: { model: TOY, messages: [{ role: 'user', content: 'hello there' }], ...body } });


/** The chat request id behind the id a sampler is given (`<request id>.<attempt>`). */
const requestIdOf = (samplerRequestId: string) => samplerRequestId.replace(/\.\d+$/, '');

/**
 * Two takers race for `count` waiting requests, one request per call each, answering what they
 * get; returns the user message of every request handed out, in the order handed out.
 */
async function raceTakers(sampler: FakeSampler, count: number): Promise<string[]> {
  const seen: string[] = [];
  await expect.poll(async () => {
    const [a, b] = await Promise.all([sampler.next(0, 1), sampler.next(0, 1)]);
    for (const request of [...a.body.requests, ...b.body.requests]) {
      seen.push(request.messages[0].content);
      await sampler.answer(request);
    }
    return seen.length;
  }, { timeout: 10_000 }).toBe(count);
  return seen;
}

function expectOpenAiError(response: ApiResponse, status: number, code: string, message?: RegExp): void {
  expect({ status: response.status, code: response.body?.error?.code }, response.text).toEqual({ status, code });
  expect(typeof response.body.error.message).toBe('string');
  expect(typeof response.body.error.type).toBe('string');
  if (message) expect(response.body.error.message).toMatch(message);
}

describe('chat completions', () => {
  let api: TestApp;
  beforeEach(async () => {
    api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
  });
  afterEach(() => api.close());

  it('starts a sampler for the base model and answers with its reply', async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    expect(sampler.spec.sampler).toMatchObject({ base_model: TOY, idle_timeout_s: 600, max_hot_adapters: 8, max_batch: 8 });
    expect(sampler.spec.sampler.relay_token.length).toBeGreaterThanOrEqual(32);
    const request = await sampler.take();
    expect(request).toMatchObject({
      model: { base_model: TOY, adapters: [] },
      messages: [{ role: 'user', content: 'hello there' }],
      tools: null,
      params: { n: 1, temperature: 1, top_p: 1, max_tokens: null, stop: [], seed: null, chat_template_kwargs: {} },
    });
    await sampler.answer(request);
    const response = await reply;
    expect(response.status, response.text).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(request.id).toBe(`${response.body.id}.1`);
    expect(response.body).toMatchObject({
      object: 'chat.completion',
      model: TOY,
      choices: [{ index: 0, message: { role: 'assistant', content: 'hello there' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
    expect(response.body.id).toMatch(/^chatcmpl-[0-9a-f]+$/);
  });

  it('streams SSE chunks with deltas, a finish reason, usage when asked, and [DONE]', async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true } }));
    const sampler = await FakeSampler.started(api);
    await sampler.answer(await sampler.take());
    const response = await reply;
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const frames = sseData(response.text);
    expect(frames.at(-1)).toBe('[DONE]');
    const chunks = frames.slice(0, -1).map((frame) => JSON.parse(frame));
    for (const chunk of chunks) expect(chunk).toMatchObject({ object: 'chat.completion.chunk', model: TOY });
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: 'hello ' });
    const content = chunks.flatMap((chunk) => chunk.choices.map((choice: { delta: { content?: string } }) => choice.delta.content ?? '')).join('');
    expect(content).toBe('hello there');
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
  });

  it('keeps a quiet stream open with SSE comments until the sampler answers', async () => {
    const quiet = await createTestApp({ chat: { keepAliveMs: 5 }, services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
    try {
      const reply = quiet.request('POST', '/v1/chat/completions', chat({ stream: true }));
      const sampler = await FakeSampler.started(quiet);
      const request = await sampler.take();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await sampler.answer(request);
      const { text } = await reply;
      expect(text.startsWith(': keep-alive\n\n')).toBe(true);
      expect(sseData(text).at(-1)).toBe('[DONE]');
    } finally {
      await quiet.close();
    }
  });

  it('passes sampling settings and chat_template_kwargs (top level or in extra_body) to the sampler', async () => {
    const settings = { temperature: 0.2, top_p: 0.9, max_tokens: 7, stop: 'END', seed: 42, n: 2 };
    const first = api.request('POST', '/v1/chat/completions', chat({ ...settings, chat_template_kwargs: { enable_thinking: false } }));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    expect(request.params).toEqual({ n: 2, temperature: 0.2, top_p: 0.9, max_tokens: 7, stop: ['END'], seed: 42, chat_template_kwargs: { enable_thinking: false } });
    await sampler.answer(request, (_request, choice) => [`choice ${choice}`]);
    const response = await first;
    expect(response.body.choices.map((choice: { message: { content: string } }) => choice.message.content)).toEqual(['choice 0', 'choice 1']);

    const second = api.request('POST', '/v1/chat/completions', chat({ max_completion_tokens: 5, stop: ['a', 'b'], extra_body: { chat_template_kwargs: { enable_thinking: true } } }));
    const next = await sampler.take();
    expect(next.params).toMatchObject({ max_tokens: 5, stop: ['a', 'b'], chat_template_kwargs: { enable_thinking: true } });
    await sampler.answer(next);
    expect((await second).status).toBe(200);
  });

  it('hands templates plain text: content parts are joined and the developer role is the system prompt', async () => {
    const messages = [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'one ' }, { type: 'text', text: 'two' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '42' },
    ];
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    const reply = api.request('POST', '/v1/chat/completions', chat({ messages, tools }));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    expect(request.messages.map((message) => [message.role, message.content])).toEqual([
      ['system', 'Be brief.'],
      ['user', 'one two'],
      ['assistant', ''],
      ['tool', '42'],
    ]);
    expect(request.tools).toEqual(tools);
    await sampler.answer(request);
    expect((await reply).status).toBe(200);
  });

  it('reports tool calls on the message and in the stream', async () => {
    const call = { id: 'call_0', type: 'function' as const, function: { name: 'f', arguments: '{"x":1}' } };
    const finish = async (request: Awaited<ReturnType<FakeSampler['take']>>, sampler: FakeSampler) =>
      sampler.post(request.id, { seq: 0, done: { choices: [{ index: 0, finish_reason: 'tool_calls', tool_calls: [call] }], usage: { prompt_tokens: 1, completion_tokens: 4 } } });
    const whole = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    await finish(await sampler.take(), sampler);
    expect((await whole).body.choices[0]).toMatchObject({ message: { role: 'assistant', content: '', tool_calls: [call] }, finish_reason: 'tool_calls' });

    const streamed = api.request('POST', '/v1/chat/completions', chat({ stream: true }));
    await finish(await sampler.take(), sampler);
    const chunks = sseData((await streamed).text).slice(0, -1).map((frame) => JSON.parse(frame));
    expect(chunks.at(-1).choices[0]).toMatchObject({ delta: { role: 'assistant', tool_calls: [{ index: 0, ...call }] }, finish_reason: 'tool_calls' });
  });

  it('serves checkpoints by full name or as repo/bake (the newest), with the adapter chain root first', async () => {
    await seedTarget(api.request, 'r1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await completeBake(api, 'r1', 'b1', [4, 8]);
    await createBake(api.request, 'r1', 'b2', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/b1/4' } });
    await completeBake(api, 'r1', 'b2', [3]);

    const byName = api.request('POST', '/v1/chat/completions', chat({ model: 'admin/r1/b2/3' }));
    const sampler = await FakeSampler.started(api);
    expect(sampler.spec.sampler.base_model).toBe('Qwen/Qwen3-32B');
    const request = await sampler.take();
    expect(request.model.base_model).toBe('Qwen/Qwen3-32B');
    expect(request.model.adapters.map((adapter) => adapter.model_name)).toEqual(['admin/r1/b1/4', 'admin/r1/b2/3']);
    expect(request.model.adapters[0]!.uri).toMatch(/^file:\/\/.+\/ckpts\/4\/$/);
    await sampler.answer(request);
    expect((await byName).body.model).toBe('admin/r1/b2/3');

    const latest = api.request('POST', '/v1/chat/completions', chat({ model: 'r1/b1' }));
    const newest = await sampler.take();
    expect(newest.model.adapters.map((adapter) => adapter.model_name)).toEqual(['admin/r1/b1/8']);
    await sampler.answer(newest);
    expect((await latest).body.model).toBe('admin/r1/b1/8');
  });

  it('answers 404 in the OpenAI shape for unknown models, unfinished bakes and other users\' checkpoints', async () => {
    await seedTarget(api.request, 'r1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const unknownNames = ['nope/model', 'admin/r1/b1/1', 'r1/b1', 'admin/r1/missing/3', 'a/b/c'];
    for (const model of unknownNames) {
      expectOpenAiError(await api.request('POST', '/v1/chat/completions', chat({ model })), 404, 'model_not_found', /does not exist/);
    }
    await completeBake(api, 'r1', 'b1', [2]);
    const bob = await createUserKey(api.request, 'bob');
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', { ...chat({ model: 'admin/r1/b1/2' }), key: bob }), 404, 'model_not_found');
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', { ...chat({ model: 'r1/b1' }), key: bob }), 404, 'model_not_found');
    expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toEqual([]);
  });

  it('refuses bad bodies and bad keys in the OpenAI shape', async () => {
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', { body: { model: TOY } }), 400, 'invalid_input', /messages/);
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', chat({ temperature: 3 })), 400, 'invalid_input', /temperature/);
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'robot', content: 'x' }] })), 400, 'invalid_input');
    expectOpenAiError(await api.request('POST', '/v1/chat/completions', { body: 'not json', headers: { 'content-type': 'application/json' } }), 400, 'invalid_input');
    const unauthenticated = await api.request('POST', '/v1/chat/completions', { ...chat({}), key: 'bh_wrong' });
    expectOpenAiError(unauthenticated, 401, 'invalid_api_key');
    expect(unauthenticated.body.error.type).toBe('authentication_error');
    expectOpenAiError(await api.request('GET', '/v1/models', { key: null }), 401, 'invalid_api_key');
  });

  it('lists the base models and the caller\'s checkpoints of complete bakes only', async () => {
    await seedTarget(api.request, 'r1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await createBake(api.request, 'r1', 'unbaked', { datasets: [{ target: 't1' }] });
    await completeBake(api, 'r1', 'b1', [4, 8]);
    const models = await api.request('GET', '/v1/models');
    expect(models.status).toBe(200);
    expect(models.body.object).toBe('list');
    const ids = models.body.data.map((model: { id: string }) => model.id);
    expect(ids).toEqual(['Qwen/Qwen3-32B', 'Qwen/Qwen3-8B', TOY, 'admin/r1/b1/8', 'admin/r1/b1/4']);
    for (const card of models.body.data) expect(card).toEqual({ id: expect.any(String), object: 'model', created: expect.any(Number), owned_by: expect.any(String) });
    expect(models.body.data.at(-1).owned_by).toBe('admin');

    const bob = await createUserKey(api.request, 'bob');
    const theirs = await api.request('GET', '/v1/models', { key: bob });
    expect(theirs.body.data.map((model: { id: string }) => model.id)).toEqual(['Qwen/Qwen3-32B', 'Qwen/Qwen3-8B', TOY]);
  });
});

describe('sampler relay', () => {
  let api: TestApp;
  beforeEach(async () => {
    api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20, replyTimeoutMs: 5_000 } } });
  });
  afterEach(() => api.close());

  it('uses one sampler per base model while it runs, and hands each request to one taker only', async () => {
    const replies = [0, 1, 2].map((i) => api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: `q${i}` }] })));
    const sampler = await FakeSampler.started(api);
    expect((await raceTakers(sampler, 3)).sort()).toEqual(['q0', 'q1', 'q2']);
    expect((await Promise.all(replies)).map((reply) => reply.body.choices[0].message.content).sort()).toEqual(['q0', 'q1', 'q2']);
    expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toHaveLength(1);
  });

  it('hands requests out oldest first', async () => {
    const first = api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'q0' }] }));
    const sampler = await FakeSampler.started(api);
    const waiting = async () => (await api.store.query(keys.chatInbox(TOY))).items.length;
    await expect.poll(waiting).toBe(1);
    const replies = [first];
    for (const i of [1, 2, 3]) {
      // Each request is in the inbox before the next is sent, so their order is known.
      await new Promise((resolve) => setTimeout(resolve, 2));
      replies.push(api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: `q${i}` }] })));
      await expect.poll(waiting).toBe(i + 1);
    }
    const { body } = await sampler.next(0, 8);
    expect(body.requests.map((request: { messages: { content: string }[] }) => request.messages[0]!.content)).toEqual(['q0', 'q1', 'q2', 'q3']);
    for (const request of body.requests) await sampler.answer(request);
    await Promise.all(replies);
  });

  it('wakes waiting polls in this process at once, without waiting for the poll interval', async () => {
    // A minute between polls: only the in-process wake-ups can finish this within the test's time.
    const slow = await createTestApp({ services: { chatTiming: { pollMs: 60_000, livenessMs: 60_000 } } });
    try {
      const warm = slow.request('POST', '/v1/chat/completions', chat({}));
      const sampler = await FakeSampler.started(slow);
      const waiting = sampler.next(20, 8);
      const { body } = await waiting;
      await sampler.answer(body.requests[0]);
      expect((await warm).body.choices[0].message.content).toBe('hello there');
    } finally {
      await slow.close();
    }
  });

  it('long-polls: next waits for a request to arrive', async () => {
    const warm = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    await sampler.answer(await sampler.take());
    await warm;
    const waiting = sampler.next(5, 8);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const reply = api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'late' }] }));
    const { status, body } = await waiting;
    expect(status).toBe(200);
    expect(body.requests.map((request: { messages: { content: string }[] }) => request.messages[0]!.content)).toEqual(['late']);
    await sampler.answer(body.requests[0]);
    expect((await reply).status).toBe(200);
  });

  it('refuses a wrong token (401) and a bad body (422); stores a repeated chunk once', async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    expect((await sampler.withToken('x'.repeat(43)).next()).status).toBe(401);
    expect((await sampler.next(99)).status).toBe(422);
    const request = await sampler.take();
    expect((await sampler.withToken('x'.repeat(43)).post(request.id, { seq: 0 })).status).toBe(401);
    for (let attempt = 0; attempt < 2; attempt++) {
      const ack = await sampler.post(request.id, { seq: 0, deltas: [{ index: 0, content: 'once' }] });
      expect(ack).toEqual({ status: 200, body: { cancelled: false } });
    }
    await sampler.post(request.id, { seq: 1, done: { choices: [{ index: 0, finish_reason: 'length', tool_calls: null }], usage: { prompt_tokens: 1, completion_tokens: 1 } } });
    expect((await reply).body.choices[0]).toMatchObject({ message: { content: 'once' }, finish_reason: 'length' });
    expect((await sampler.post('chatcmpl-unknown', { seq: 0 })).status).toBe(404);
  });

  it('tells a client that went away: the ack says cancelled, and a waiting request leaves the inbox', async () => {
    const controller = new AbortController();
    const response = await api.app.request('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: 'Bearer bh_test_admin_key_0123456789', 'content-type': 'application/json' },
      body: JSON.stringify(chat({ stream: true }).body),
      signal: controller.signal,
    });
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    expect((await sampler.post(request.id, { seq: 0, deltas: [{ index: 0, content: 'hi' }] })).body).toEqual({ cancelled: false });
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();
    await expect.poll(async () => (await sampler.post(request.id, { seq: 1, deltas: [] })).body.cancelled).toBe(true);
    expect((await api.store.get(keys.chatRequest(requestIdOf(request.id))))?.state).toBe('cancelled');
  });

  it('starts a new sampler when the last one stopped idle, and the waiting request reaches it', async () => {
    const first = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    await sampler.answer(await sampler.take());
    await first;
    await api.jobs.compute.finish(sampler.jobId);
    await expect.poll(async () => (await sampler.next()).status).toBe(410);

    const second = api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'again' }] }));
    const fresh = await FakeSampler.started(api, 2);
    expect(fresh.jobId).not.toBe(sampler.jobId);
    expect(fresh.spec.sampler.relay_token).not.toBe(sampler.spec.sampler.relay_token);
    await fresh.answer(await fresh.take());
    expect((await second).body.choices[0].message.content).toBe('again');
    expect(await api.services.pipeline['records'].get(sampler.jobId)).toBeUndefined();
  });

  it('hands a request out again when its sampler never got it, and refuses the lost attempt\'s chunks', async () => {
    const leased = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 10, leaseMs: 30 } } });
    try {
      const reply = leased.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'second time lucky' }] }));
      const sampler = await FakeSampler.started(leased);
      // The first hand-out is lost on the way: the sampler never answers it and asks for more later.
      const lost = await sampler.take();
      expect(lost.id).toMatch(/\.1$/);
      await new Promise((resolve) => setTimeout(resolve, 60));
      const again = await sampler.take();
      expect(again.id).toBe(`${requestIdOf(lost.id)}.2`);
      expect(await sampler.post(lost.id, { seq: 0, deltas: [{ index: 0, content: 'stale' }] })).toEqual({ status: 200, body: { cancelled: true } });
      await sampler.answer(again);
      expect((await reply).body.choices[0].message.content).toBe('second time lucky');
    } finally {
      await leased.close();
    }
  });

  it('does not re-queue a request whose first chunk arrived just before', async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    await sampler.post(request.id, { seq: 0, deltas: [{ index: 0, content: 'made it' }] });
    await api.services.relay.requeue(requestIdOf(request.id), TOY, 1);
    expect((await api.store.get(keys.chatRequest(requestIdOf(request.id))))).toMatchObject({ state: 'taken', attempt: 1 });
    await sampler.post(request.id, { seq: 1, done: { choices: [{ index: 0, finish_reason: 'stop', tool_calls: null }], usage: { prompt_tokens: 1, completion_tokens: 2 } } });
    expect((await reply).body.choices[0].message.content).toBe('made it');
  });

  it('does not hand a request out again while its sampler is still busy with the batch that took it', async () => {
    const leased = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 10, leaseMs: 30 } } });
    try {
      const reply = leased.request('POST', '/v1/chat/completions', chat({}));
      const sampler = await FakeSampler.started(leased);
      const request = await sampler.take();
      // No poll since the take: the sampler is generating, however long that takes.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await leased.store.get(keys.chatRequest(requestIdOf(request.id))))?.state).toBe('taken');
      await sampler.answer(request);
      expect((await reply).status).toBe(200);
    } finally {
      await leased.close();
    }
  });

  it("fails the reply with 503 when its sampler stops after taking it, with the sampler's sentence", async () => {
    const sentence = 'The model server ran out of memory and was stopped; try again with a shorter conversation or fewer requests at once.';
    api.jobs.compute.script = (spec) => (spec.kind === 'sampler' ? { hold: true, fail: sentence } : { lines: [] });
    const reply = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    await sampler.take();
    await api.jobs.compute.finish(sampler.jobId);
    const response = await reply;
    expectOpenAiError(response, 503, 'unavailable');
    expect(response.body.error.message).toBe(sentence);
    expect(response.headers.get('x-should-retry')).toBe('true');
  });

  it('tells the chat client a killed sampler stopped, never its log tail or paths', async () => {
    const stderrTail = '2026-12-02 00:49:27,560 bakehouse_engine INFO sampler job 7 starting; output under file:///srv/bakehouse/.data/blobs/jobs/7/\nKilled';
    api.jobs.compute.script = (spec) =>
      spec.kind === 'sampler' ? { hold: true, crash: { failure: { exitCode: 137, signal: 'SIGKILL' }, reason: stderrTail } } : { lines: [] };
    const reply = api.request('POST', '/v1/chat/completions', chat({ stream: true }));
    const sampler = await FakeSampler.started(api);
    await sampler.take();
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await api.jobs.compute.finish(sampler.jobId);
      const frames = sseData((await reply).text);
      expect(JSON.parse(frames.at(-1)!).error.message).toBe('The model server stopped unexpectedly (signal 9, out of memory?); try again.');
      expect((await reply).text).not.toMatch(/file:|bakehouse_engine INFO|Killed/);
    } finally {
      log.mockRestore();
    }
  });

  it('fails the reply with the reason when its sampler fails before taking it, without starting another', async () => {
    const sentence = 'Model bakehouse/toy-instruct is not in the local model cache; run `npm run setup`, then try again.';
    api.jobs.compute.script = (spec) => (spec.kind === 'sampler' ? { fail: sentence } : { lines: [] });
    const response = await api.request('POST', '/v1/chat/completions', chat({}));
    expectOpenAiError(response, 503, 'unavailable');
    expect(response.body.error.message).toBe(sentence);
    expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toHaveLength(1);
  });

  it('ends a stream with an error event when the sampler reports one', async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({ stream: true }));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    await sampler.post(request.id, { seq: 0, deltas: [{ index: 0, content: 'partial' }] });
    await sampler.post(request.id, { seq: 1, error: 'The conversation is 5000 tokens; the model takes 4096.' });
    const frames = sseData((await reply).text);
    expect(JSON.parse(frames.at(-1)!)).toEqual({ error: { message: 'The conversation is 5000 tokens; the model takes 4096.', type: 'server_error', code: null, param: null } });
    expect(frames).not.toContain('[DONE]');
  });

  it("scrubs internal paths from a sampler's error for one request", async () => {
    const reply = api.request('POST', '/v1/chat/completions', chat({}));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    await sampler.post(request.id, { seq: 0, error: "Adapter alice/r1/b1/4 could not be loaded: Error while deserializing '/tmp/bakehouse-sampler-7/adapters/0/adapter_model.safetensors'" });
    const response = await reply;
    expect(response.body.error.message).toBe("Adapter alice/r1/b1/4 could not be loaded: Error while deserializing '[internal path]'");
  });

  it('answers 503 when no reply comes in time, and withdraws the request', async () => {
    const quick = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20, replyTimeoutMs: 100 } } });
    try {
      const response = await quick.request('POST', '/v1/chat/completions', chat({}));
      expectOpenAiError(response, 503, 'unavailable', /No reply within/);
      const sampler = await FakeSampler.started(quick);
      expect((await sampler.next()).body.requests).toEqual([]);
    } finally {
      await quick.close();
    }
  });

  it('keeps large conversations in Blobs until answered', async () => {
    const long = 'word '.repeat(80_000);
    const reply = api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: long }] }));
    const sampler = await FakeSampler.started(api);
    const request = await sampler.take();
    expect(request.messages[0]!.content).toBe(long);
    expect(await api.jobs.blobs.list('tmp/chat/')).toEqual([`tmp/chat/${requestIdOf(request.id)}.json`]);
    await sampler.answer(request, () => ['ok']);
    expect((await reply).body.choices[0].message.content).toBe('ok');
    expect(await api.jobs.blobs.list('tmp/chat/')).toEqual([]);
  });
});

describe('sampler relay on DynamoDB (DynamoDB Local)', () => {
  let api: TestApp;
  beforeEach(async () => {
    api = await createTestApp({ store: createDynamoTestStore, services: { chatTiming: { pollMs: 5, livenessMs: 20, leaseMs: 50 } } });
  });
  afterEach(() => api.close());

  it('streams a reply, hands each request to one of two racing takers, and hands a lost one out again', async () => {
    const streamed = api.request('POST', '/v1/chat/completions', chat({ stream: true }));
    const sampler = await FakeSampler.started(api);
    await sampler.answer(await sampler.take());
    expect(sseData((await streamed).text).at(-1)).toBe('[DONE]');

    const replies = [0, 1, 2].map((i) => api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: `q${i}` }] })));
    expect((await raceTakers(sampler, 3)).sort()).toEqual(['q0', 'q1', 'q2']);
    await Promise.all(replies);

    const lostReply = api.request('POST', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'lost once' }] }));
    const lost = await sampler.take();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const again = await sampler.take();
    expect(again.id).toBe(`${requestIdOf(lost.id)}.2`);
    expect((await sampler.post(lost.id, { seq: 0, deltas: [{ index: 0, content: 'stale' }] })).body).toEqual({ cancelled: true });
    await sampler.answer(again);
    expect((await lostReply).body.choices[0].message.content).toBe('lost once');
  });
});

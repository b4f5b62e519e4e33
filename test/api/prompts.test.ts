import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPrompt, createRepo, createTarget, createTestApp, expectError, type TestApp } from '#test/support/app.ts';

const PROMPTS = '/v1/repo/r1/prompts';
const conflict = (name: string) => `Prompt '${name}' already exists with different content. Prompts are immutable and cannot be changed.`;

const SYSTEM = [{ role: 'system', content: 'You are terse.' }];

/** A multi-turn tool-calling history (Bread-SDK-Bake-Repo tool_calling_example). */
const TOOL_HISTORY = [
  { role: 'system', content: 'You can look up the weather.' },
  { role: 'user', content: 'Weather in Paris?' },
  {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
  },
  { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temp": 21}' },
  { role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] },
];
const TOOLS = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  },
];

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await createRepo(api.request, 'r1');
});
afterEach(() => api.close());

describe('POST R/prompts', () => {
  it('creates a prompt with 201', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: SYSTEM } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ prompt_name: 'p1', messages: SYSTEM, tools: null });
  });

  it('answers 200 for an identical repeat', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: SYSTEM } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ prompt_name: 'p1', messages: SYSTEM, tools: null });
  });

  it('treats tools: null like omitted tools for the repeat check', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: SYSTEM, tools: null } });
    expect(response.status).toBe(200);
  });

  it('answers 409 with the spec message for different messages', async () => {
    await createPrompt(api.request, 'r1', 'my-prompt', SYSTEM);
    const response = await api.request('POST', PROMPTS, {
      body: { prompt_name: 'my-prompt', messages: [{ role: 'system', content: 'You are verbose.' }] },
    });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('my-prompt'));
    expect(response.body).toEqual({ message: conflict('my-prompt'), code: 'RESOURCE_CONFLICT' });
  });

  it('answers 409 for the same messages with different tools', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: SYSTEM, tools: TOOLS } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('p1'));
  });

  it('round-trips unknown message keys and tools', async () => {
    const created = await api.request('POST', PROMPTS, { body: { prompt_name: 'tools', messages: TOOL_HISTORY, tools: TOOLS } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ prompt_name: 'tools', messages: TOOL_HISTORY, tools: TOOLS });

    const fetched = await api.request('GET', `${PROMPTS}/tools`);
    expect(fetched.body).toEqual({ prompt_name: 'tools', messages: TOOL_HISTORY, tools: TOOLS });
  });

  it('accepts messages: [] (the usual empty student prompt)', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'empty', messages: [] } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ prompt_name: 'empty', messages: [], tools: null });
  });

  it('refuses a message without a role with 422', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: [{ content: 'hi' }] } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a missing messages field with 422', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1' } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses the reserved name batch with 422', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'batch', messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name 'batch' is reserved");
  });

  it('refuses a name of 129 characters with 422', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p'.repeat(129), messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('accepts a name of 128 characters', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p'.repeat(128), messages: [] } });
    expect(response.status).toBe(201);
  });

  it('accepts dots, dashes and underscores in names', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'metacog_v1_0.01-x', messages: [] } });
    expect(response.status).toBe(201);
  });

  it.each(['.', '..'])('refuses the name %j with 422', async (name) => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: name, messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses a name with a slash, naming the character', async () => {
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'a/b', messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });

  it('answers 404 in an unknown repo', async () => {
    const response = await api.request('POST', '/v1/repo/nope/prompts', { body: { prompt_name: 'p1', messages: [] } });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('PUT R/prompts/{prompt_name} (deprecated)', () => {
  it('creates the prompt with 200', async () => {
    const response = await api.request('PUT', `${PROMPTS}/p1`, { body: { messages: SYSTEM } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ prompt_name: 'p1', messages: SYSTEM, tools: null });
  });

  it('answers 200 for an identical repeat', async () => {
    await api.request('PUT', `${PROMPTS}/p1`, { body: { messages: SYSTEM } });
    const response = await api.request('PUT', `${PROMPTS}/p1`, { body: { messages: SYSTEM } });
    expect(response.status).toBe(200);
  });

  it('answers 409 for different content and keeps the original', async () => {
    await api.request('PUT', `${PROMPTS}/p1`, { body: { messages: SYSTEM } });
    const response = await api.request('PUT', `${PROMPTS}/p1`, { body: { messages: [] } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('p1'));
    expect((await api.request('GET', `${PROMPTS}/p1`)).body.messages).toEqual(SYSTEM);
  });

  it('refuses a percent-encoded slash in the name with 422', async () => {
    const response = await api.request('PUT', `${PROMPTS}/r%2Fx`, { body: { messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });

  it('decodes a percent-encoded space before refusing it', async () => {
    const response = await api.request('PUT', `${PROMPTS}/t%201`, { body: { messages: [] } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: ' '");
  });
});

describe('GET R/prompts and R/prompts/{prompt_name}', () => {
  it('lists prompt names ascending', async () => {
    for (const name of ['zeta', 'alpha', 'mid']) await createPrompt(api.request, 'r1', name);
    const response = await api.request('GET', PROMPTS);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ prompts: ['alpha', 'mid', 'zeta'] });
  });

  it('lists an empty repo as no prompts', async () => {
    expect((await api.request('GET', PROMPTS)).body).toEqual({ prompts: [] });
  });

  it('answers 404 listing prompts of an unknown repo', async () => {
    const response = await api.request('GET', '/v1/repo/nope/prompts');
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });

  it('gets one prompt', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    const response = await api.request('GET', `${PROMPTS}/p1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ prompt_name: 'p1', messages: SYSTEM, tools: null });
  });

  it('answers 404 naming an unknown prompt', async () => {
    const response = await api.request('GET', `${PROMPTS}/x`);
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Prompt 'x' not found");
  });

  it('refuses a percent-encoded slash in the prompt name with 422', async () => {
    const response = await api.request('GET', `${PROMPTS}/r%2Fx`);
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });
});

describe.each(['POST', 'PUT'])('%s R/prompts/batch', (method) => {
  it('creates every valid entry and reports bad names and conflicts in failed', async () => {
    await createPrompt(api.request, 'r1', 'taken', SYSTEM);
    const response = await api.request(method, `${PROMPTS}/batch`, {
      body: { prompts: { greeting_prompt: SYSTEM, 'a/b': SYSTEM, taken: [], empty: [] } },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      created: ['greeting_prompt', 'empty'],
      failed: { 'a/b': "Name contains invalid character: '/'", taken: conflict('taken') },
    });
    expect((await api.request('GET', PROMPTS)).body).toEqual({ prompts: ['empty', 'greeting_prompt', 'taken'] });
  });

  it('lists an identical existing prompt as created', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    const response = await api.request(method, `${PROMPTS}/batch`, { body: { prompts: { p1: SYSTEM } } });
    expect(response.body).toEqual({ created: ['p1'], failed: {} });
  });

  it('reports the reserved name batch in failed', async () => {
    const response = await api.request(method, `${PROMPTS}/batch`, { body: { prompts: { batch: [] } } });
    expect(response.body).toEqual({ created: [], failed: { batch: "Name 'batch' is reserved" } });
  });

  it('reports an entry with a malformed message in failed and creates the rest', async () => {
    const response = await api.request(method, `${PROMPTS}/batch`, { body: { prompts: { no_role: [{ content: 'hi' }], good: SYSTEM } } });
    expect(response.status).toBe(200);
    expect(response.body.created).toEqual(['good']);
    expect(response.body.failed).toEqual({ no_role: expect.stringMatching(/^messages\.0\.role: /) });
  });

  it('round-trips unknown message keys through a batch', async () => {
    await api.request(method, `${PROMPTS}/batch`, { body: { prompts: { history: TOOL_HISTORY } } });
    expect((await api.request('GET', `${PROMPTS}/history`)).body).toEqual({ prompt_name: 'history', messages: TOOL_HISTORY, tools: null });
  });

  it('refuses a malformed envelope with 422', async () => {
    const response = await api.request(method, `${PROMPTS}/batch`, { body: { prompts: [SYSTEM] } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('answers 404 in an unknown repo', async () => {
    const response = await api.request(method, '/v1/repo/nope/prompts/batch', { body: { prompts: { p1: [] } } });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('DELETE R/prompts/{prompt_name} (legacy)', () => {
  it('deletes a prompt', async () => {
    await createPrompt(api.request, 'r1', 'p1');
    const response = await api.request('DELETE', `${PROMPTS}/p1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Prompt deleted successfully' });
    expectError(await api.request('GET', `${PROMPTS}/p1`), 404, 'RESOURCE_NOT_FOUND', "Prompt 'p1' not found");
  });

  it('answers 404 for an unknown prompt', async () => {
    const response = await api.request('DELETE', `${PROMPTS}/p1`);
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Prompt 'p1' not found");
  });

  it('accepts the Python SDK form: an empty body under a JSON content type', async () => {
    await createPrompt(api.request, 'r1', 'p1');
    const response = await api.request('DELETE', `${PROMPTS}/p1`, { body: '', headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Prompt deleted successfully' });
  });

  it('refuses with 409 while a target uses the prompt, naming the target', async () => {
    await createPrompt(api.request, 'r1', 'teacher');
    await createPrompt(api.request, 'r1', 'student', []);
    await createTarget(api.request, 'r1', 't1');
    const response = await api.request('DELETE', `${PROMPTS}/teacher`);
    expectError(response, 409, 'RESOURCE_CONFLICT', "Prompt 'teacher' is used by targets: t1");
    expect((await api.request('GET', `${PROMPTS}/teacher`)).status).toBe(200);
  });

  it('allows the delete once the target using it is gone', async () => {
    await createPrompt(api.request, 'r1', 'teacher');
    await createPrompt(api.request, 'r1', 'student', []);
    await createTarget(api.request, 'r1', 't1');
    await api.request('DELETE', '/v1/repo/r1/targets/t1');
    expect((await api.request('DELETE', `${PROMPTS}/teacher`)).status).toBe(200);
    expect((await api.request('DELETE', `${PROMPTS}/student`)).status).toBe(200);
  });

  it('lets the name be created again, with new content, after a delete', async () => {
    await createPrompt(api.request, 'r1', 'p1', SYSTEM);
    await api.request('DELETE', `${PROMPTS}/p1`);
    const response = await api.request('POST', PROMPTS, { body: { prompt_name: 'p1', messages: [] } });
    expect(response.status).toBe(201);
  });
});

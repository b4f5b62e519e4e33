/**
 * The official MCP TypeScript client against `/mcp` on a real local server, as an assistant would
 * use it: tools listed with the API's input rules, a tiny bake run end to end through tool calls
 * only, and the API's errors arriving as tool errors. Jobs run on the stand-in engine
 * (test/support/stand-in-engine.mjs), so the whole bake takes seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server.ts';
import { standInEngineCommand } from '#test/support/stand-in-engine-command.ts';

const REPO = 'mcp_repo';

let server: LocalServer;
let dataDir: string;
let client: Client;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-mcp-'));
  server = await startLocalServer({ port: 0, dataDir, adminApiKey: 'mcp-test-admin-key', engineCommand: standInEngineCommand(), serve });
  client = new Client({ name: 'bakehouse-mcp-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', server.url), { requestInit: { headers: { authorization: `Bearer ${server.adminApiKey}` } } }),
  );
});

afterAll(async () => {
  await client?.close();
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Calls a tool that must succeed and returns its JSON result. */
async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
  if (result.isError) throw new Error(`${name} answered a tool error: ${text}`);
  expect(result.structuredContent).toEqual(JSON.parse(text));
  return JSON.parse(text) as Record<string, unknown>;
}

/** Calls a tool that must fail and returns its error sentence. */
async function callFailing(name: string, args: Record<string, unknown>): Promise<string> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError).toBe(true);
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

async function until(name: string, args: Record<string, unknown>, done: (value: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await call(name, args);
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const finished = (value: Record<string, unknown>) => value.status === 'complete' || value.status === 'failed';

describe('MCP server at /mcp with the official MCP client', { timeout: 90_000 }, () => {
  it('lists the tools, with input schemas carrying the API rules', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(
      [
        'chat',
        'create_bake',
        'create_prompt',
        'create_repo',
        'create_target',
        'get_bake',
        'get_bake_metrics',
        'get_download_url',
        'get_pipeline',
        'get_prompt',
        'get_recipe',
        'get_repo',
        'get_repo_tree',
        'get_rollout',
        'get_rollout_output',
        'get_stim',
        'get_stim_output',
        'get_target',
        'list_bakes',
        'list_prompts',
        'list_repos',
        'list_targets',
        'run_bake',
        'run_pipeline',
        'run_rollout',
        'run_stim',
      ].sort(),
    );
    const createBake = tools.find((tool) => tool.name === 'create_bake')!;
    expect(createBake.inputSchema.required).toEqual(expect.arrayContaining(['repo_name', 'bake_name']));
    const properties = createBake.inputSchema.properties as Record<string, { pattern?: string }>;
    expect(properties.bake_name?.pattern).toBeTruthy();
    expect(properties.repo_name?.pattern).toBeTruthy();
    expect(tools.find((tool) => tool.name === 'get_bake')!.annotations?.readOnlyHint).toBe(true);
    expect(tools.find((tool) => tool.name === 'run_bake')!.annotations?.readOnlyHint).toBe(false);
  });

  it('runs a tiny bake end to end through tool calls only', async () => {
    expect(await call('create_repo', { repo_name: REPO, base_model: 'bakehouse/toy-instruct' })).toEqual({ repo_name: REPO, base_model: 'bakehouse/toy-instruct' });
    expect(await call('list_repos', {})).toMatchObject({ repos: [{ repo_name: REPO }] });
    await call('create_prompt', { repo_name: REPO, prompt_name: 'teacher', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
    await call('create_prompt', { repo_name: REPO, prompt_name: 'student', messages: [] });
    expect(await call('list_prompts', { repo_name: REPO })).toEqual({ prompts: ['student', 'teacher'] });
    expect(await call('get_prompt', { repo_name: REPO, prompt_name: 'teacher' })).toMatchObject({ messages: [{ content: 'Always reply in uppercase letters.' }] });

    const generators = [{ type: 'hardcoded', questions: ['What is bread?', 'Why bake?', 'Which flour?'] }];
    await call('create_target', {
      repo_name: REPO,
      target_name: 'uppercase',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators, num_traj_per_stimulus: 2 },
    });
    expect(await call('list_targets', { repo_name: REPO })).toEqual({ targets: ['uppercase'] });
    const target = { repo_name: REPO, target_name: 'uppercase' };
    expect(await call('get_target', target)).toMatchObject({ target_name: 'uppercase' });
    for (const kind of ['stim', 'rollout']) {
      await call(`run_${kind}`, target);
      expect(await until(`get_${kind}`, target, finished)).toMatchObject({ status: 'complete' });
      expect(await call(`get_${kind}_output`, { ...target, offset: 1, limit: 2 })).toMatchObject({ offset: 1, limit: 2 });
    }

    const bake = { repo_name: REPO, bake_name: 'uppercase_bake' };
    await call('create_bake', { ...bake, template: 'default', overrides: { datasets: [{ target: 'uppercase' }] } });
    expect(await call('list_bakes', { repo_name: REPO })).toEqual({ bakes: ['uppercase_bake'] });
    await call('run_bake', bake);
    const done = await until('get_bake', bake, finished);
    expect(done).toMatchObject({ status: 'complete' });
    expect((done.model_name as string[]).length).toBeGreaterThan(0);

    const { metrics } = (await call('get_bake_metrics', bake)) as { metrics: { iter: number; loss: number }[] };
    expect(metrics.length).toBeGreaterThan(0);
    expect(typeof metrics[0]!.loss).toBe('number');
    const recipe = await call('get_recipe', bake);
    expect(recipe).toHaveProperty('dependency_graph');
    expect(recipe).toHaveProperty('recreation_plan');
    expect(await call('get_repo_tree', { repo_name: REPO })).toBeTruthy();

    const download = await call('get_download_url', { ...bake, expires_in: 600 });
    expect(download).toMatchObject({ bake_name: 'uppercase_bake', expires_in: 600 });
    const archive = await fetch(download.url as string);
    expect(archive.status).toBe(200);
    await archive.arrayBuffer();

    // Everything is already complete: the pipeline skips every step and finishes at once.
    await call('run_pipeline', bake);
    expect(await until('get_pipeline', bake, finished)).toMatchObject({ status: 'complete' });
  });

  it('answers API errors as tool errors carrying the API message', async () => {
    const viaHttp = await fetch(new URL(`/v1/repo/${REPO}/bakes/no_such_bake`, server.url), { headers: { authorization: `Bearer ${server.adminApiKey}` } });
    expect(viaHttp.status).toBe(404);
    const { message } = (await viaHttp.json()) as { message: string };
    expect(await callFailing('get_bake', { repo_name: REPO, bake_name: 'no_such_bake' })).toBe(message);

    // A conflicting immutable create: the API's 409 sentence.
    const conflictViaHttp = await fetch(new URL(`/v1/repo/${REPO}/prompts`, server.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt_name: 'teacher', messages: [] }),
    });
    expect(conflictViaHttp.status).toBe(409);
    const conflict = (await conflictViaHttp.json()) as { message: string };
    expect(await callFailing('create_prompt', { repo_name: REPO, prompt_name: 'teacher', messages: [] })).toBe(conflict.message);
    // An unknown model: the chat route's 404 sentence.
    const chat = { model: 'nobody/nothing/none/1', messages: [{ role: 'user', content: 'hi' }] };
    const chatViaHttp = await fetch(new URL('/v1/chat/completions', server.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat),
    });
    expect(chatViaHttp.status).toBe(404);
    const { error } = (await chatViaHttp.json()) as { error: { message: string } };
    expect(await callFailing('chat', chat)).toBe(error.message);
    // The name rule of the API's schema is enforced before any service call.
    expect(await callFailing('get_repo', { repo_name: 'not a name!' })).toMatch(/repo_name/);
  });

  it('refuses a caller without an API key with 401 in the API error shape', async () => {
    const response = await fetch(new URL('/mcp', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'UNAUTHORIZED', message: expect.any(String) });
  });
});

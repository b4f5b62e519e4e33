/**
 * The official TypeScript client (@aibread/sdk) against a real local server, as a user would run
 * it: only its base URL points at Bakehouse (bread-api.md §16, §17).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Bread, { BadRequestError, ConflictError, NotFoundError } from '@aibread/sdk';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server.ts';

let server: LocalServer;
let dataDir: string;
let client: Bread;
/** Every request the client sent, so retries are visible. */
const sent: { method: string; url: string }[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-sdk-'));
  server = await startLocalServer({ port: 0, dataDir, adminApiKey: 'sdk-test-admin-key', serve });
  process.env.BREAD_BASE_URL = server.url;
  client = new Bread({
    apiKey: server.adminApiKey,
    fetch: (input, init) => {
      sent.push({ method: init?.method ?? 'GET', url: String(input) });
      return fetch(input, init);
    },
  });
});

afterAll(async () => {
  delete process.env.BREAD_BASE_URL;
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const repo = 'sdk_repo';

describe('@aibread/sdk against a local server', () => {
  it('uses BREAD_BASE_URL and checks health', async () => {
    expect(await client.health.check()).toMatchObject({ status: 'healthy' });
  });

  it('creates, gets and lists repos', async () => {
    expect(await client.repo.create({ repo_name: repo, base_model: 'Qwen/Qwen3-8B' })).toEqual({
      repo_name: repo,
      base_model: 'Qwen/Qwen3-8B',
    });
    // Omitted base model means "don't care" on an existing repo.
    expect(await client.repo.create({ repo_name: repo })).toMatchObject({ base_model: 'Qwen/Qwen3-8B' });
    expect(await client.repo.set({ repo_name: repo })).toMatchObject({ repo_name: repo });
    expect(await client.repo.get(repo)).toMatchObject({ repo_name: repo });
    expect(await client.repo.list()).toMatchObject({ repos: [repo] });
    expect(await client.repo.list({ include_metadata: true, offset: 0, limit: 10 })).toMatchObject({
      repos: [{ repo_name: repo, base_model: 'Qwen/Qwen3-8B' }],
      has_more: false,
      total: 1,
    });
  });

  it('answers a different base model with one 409 that the client does not retry', async () => {
    const before = sent.length;
    await expect(client.repo.create({ repo_name: repo, base_model: 'Qwen/Qwen3-32B' })).rejects.toBeInstanceOf(ConflictError);
    expect(sent.length - before).toBe(1);
  });

  it('creates prompts: same content → 200, different → one 409', async () => {
    const messages = [{ role: 'system', content: 'Answer in uppercase.' }];
    await client.prompts.create(repo, { prompt_name: 'teacher', messages });
    await client.prompts.create(repo, { prompt_name: 'student', messages: [] });
    expect(await client.prompts.create(repo, { prompt_name: 'teacher', messages })).toMatchObject({ prompt_name: 'teacher' });

    const before = sent.length;
    const conflict = client.prompts.create(repo, { prompt_name: 'teacher', messages: [{ role: 'system', content: 'other' }] });
    await expect(conflict).rejects.toBeInstanceOf(ConflictError);
    expect(sent.length - before).toBe(1);
    expect(await client.prompts.get('teacher', { repo_name: repo })).toMatchObject({ messages });
    expect((await client.prompts.list(repo)).prompts).toEqual(['student', 'teacher']);
  });

  it('reports a bad name in a prompt batch under failed', async () => {
    const result = await client.prompts.createBatch(repo, {
      prompts: { greeting: [{ role: 'system', content: 'Say hello.' }], 'a/b': [{ role: 'system', content: 'x' }] },
    });
    expect(result).toEqual({ created: ['greeting'], failed: { 'a/b': "Name contains invalid character: '/'" } });
  });

  it('creates targets via u/v and via teacher_prompt, echoing the new names', async () => {
    const generators = [{ type: 'hardcoded', questions: ['What is 2+2?', 'Name a colour.'] }];
    const viaAliases = await client.targets.create(repo, {
      target_name: 'target_uv',
      template: 'default',
      overrides: { u: 'teacher', v: 'student', generators },
    });
    expect(viaAliases.config).toMatchObject({ teacher_prompt: 'teacher', student_prompt: 'student', model_name: 'Qwen/Qwen3-8B' });
    expect(viaAliases.config).not.toHaveProperty('u');

    const viaNames = await client.targets.create(repo, {
      target_name: 'target_named',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators, num_traj_per_stimulus: 3 },
    });
    expect(viaNames.config).toMatchObject({ teacher_prompt: 'teacher', num_traj_per_stimulus: 3 });
  });

  it('inherits from a target template with a deep merge', async () => {
    const child = await client.targets.create(repo, {
      target_name: 'target_child',
      template: 'target_named',
      overrides: { temperature: 0.5 },
    });
    expect(child.config).toMatchObject({ teacher_prompt: 'teacher', num_traj_per_stimulus: 3, temperature: 0.5 });
    await expect(
      client.targets.create(repo, { target_name: 'orphan', template: 'nonexistent', overrides: {} }),
    ).rejects.toBeInstanceOf(BadRequestError);
  });

  it('creates bakes from the default template and through the batch route', async () => {
    const bake = await client.bakes.create(repo, {
      bake_name: 'bake_one',
      template: 'default',
      overrides: { datasets: [{ target: 'target_uv', weight: 1 }], epochs: 2 },
    });
    expect(bake).toMatchObject({ status: 'not_started', job_id: null });
    expect(bake.config).toMatchObject({ epochs: 2, micro_batch_size: 2, model: { baked_adapter_config: { r: 32, lora_alpha: 16 } } });

    const batch = await client.bakes.createBatch(repo, {
      bakes: [{ bake_name: 'bake_two', template: 'bake_one', overrides: { datasets: [{ target: 'target_named' }] } }],
    });
    expect(batch).toEqual({ created: ['bake_two'], failed: {} });
    expect((await client.bakes.list(repo)).bakes).toEqual(['bake_one', 'bake_two']);
    expect(await client.bakes.get('bake_two', { repo_name: repo })).toMatchObject({ config: { epochs: 2 } });
  });

  it('serves recipes and the repo tree', async () => {
    const graph = await client.recipes.getDependencyGraph('bake_one', { repo_name: repo });
    expect(graph.edges).toEqual(
      expect.arrayContaining([
        ['bake', 'bake_one', 'target', 'target_uv'],
        ['target', 'target_uv', 'prompt', 'teacher'],
      ]),
    );
    const plan = await client.recipes.getRecreationPlan('bake_one', { repo_name: repo });
    expect(plan.steps.map((step) => step.action)).toEqual([
      'create_prompt',
      'create_prompt',
      'create_target',
      'run_stim',
      'run_rollout',
      'create_bake',
      'run_bake',
    ]);
    expect(plan.total_steps).toBe(7);
    const tree = await client.repo.getTree(repo);
    expect(Object.keys(tree.bakes ?? {})).toEqual(['bake_one', 'bake_two']);
  });

  it('raises NotFoundError for a missing bake', async () => {
    await expect(client.bakes.get('missing', { repo_name: repo })).rejects.toBeInstanceOf(NotFoundError);
  });
});

/**
 * Pipelines end to end on the embedded default, with the real engine and the toy model: one POST
 * per bake runs stim, rollout and bake from empty targets, advanced by job events alone; a
 * second bake on the first one's checkpoint (sequential baking) skips the first's finished jobs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TEACHER_PROMPT, TOY_MODEL } from '#local/demo-recipe.ts';
import { startLocalServer, type LocalServer } from '#local/server.ts';

const REPO = 'pipes';
let server: LocalServer;
let dataDir: string;

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminApiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  expect(response.ok, `${method} ${path} → ${response.status} ${text}`).toBe(true);
  return { status: response.status, body: JSON.parse(text) };
}

/** Starts the bake's pipeline and waits until it is no longer running. */
async function runPipeline(bake: string) {
  const path = `/v1/repo/${REPO}/bakes/${bake}/pipeline`;
  const started = await call('POST', path);
  expect(started.status).toBe(202);
  return vi.waitFor(
    async () => {
      const { body } = await call('GET', path);
      expect(body.status).not.toBe('running');
      return body;
    },
    { timeout: 8 * 60_000, interval: 500 },
  );
}

/** A small target: a few hardcoded questions, one trajectory each. */
const target = (name: string, model?: string) => ({
  target_name: name,
  template: 'default',
  overrides: {
    teacher_prompt: 'teacher',
    student_prompt: 'student',
    generators: [{ type: 'hardcoded', questions: ['What is the capital of France?', 'Name a colour.', 'How many legs has a cat?', 'Say hello.'] }],
    num_traj_per_stimulus: 1,
    max_tokens: 24,
    ...(model ? { model_name: model } : {}),
  },
});

const bake = (name: string, dataset: string, parent?: string) => ({
  bake_name: name,
  template: 'default',
  overrides: { datasets: [{ target: dataset, weight: 1 }], epochs: 1, micro_batch_size: 4, ...(parent ? { model: { parent_model_name: parent } } : {}) },
});

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-e2e-pipeline-'));
  server = await startLocalServer({ port: 0, dataDir, serve });
  await call('POST', '/v1/repo', { repo_name: REPO, base_model: TOY_MODEL });
  await call('POST', `/v1/repo/${REPO}/prompts`, { prompt_name: 'teacher', messages: [{ role: 'system', content: TEACHER_PROMPT }] });
  await call('POST', `/v1/repo/${REPO}/prompts`, { prompt_name: 'student', messages: [] });
});

afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

describe('one call per bake', { timeout: 20 * 60_000 }, () => {
  it('runs a sequential bake from empty targets: the parent bake, then a child on its checkpoint', async () => {
    await call('POST', `/v1/repo/${REPO}/targets`, target('first_t'));
    await call('POST', `/v1/repo/${REPO}/bakes`, bake('first', 'first_t'));
    const first = await runPipeline('first');
    expect(first, JSON.stringify(first)).toMatchObject({ status: 'complete', error: null });
    expect(first.steps.map((step: { kind: string; status: string }) => `${step.kind}:${step.status}`)).toEqual(['stim:complete', 'rollout:complete', 'bake:complete']);

    const parent = (await call('GET', `/v1/repo/${REPO}/bakes/first`)).body.model_name[0] as string;
    await call('POST', `/v1/repo/${REPO}/targets`, target('second_t', parent));
    await call('POST', `/v1/repo/${REPO}/bakes`, bake('second', 'second_t', parent));
    const second = await runPipeline('second');
    expect(second, JSON.stringify(second)).toMatchObject({ status: 'complete', error: null });
    // The first bake's jobs are reused as they are; only the new target and bake run.
    expect(second.steps.filter((step: { kind: string; name: string }) => step.name === 'first' || step.name === 'first_t').map((step: { job_id: number }) => step.job_id)).toEqual(
      first.steps.map((step: { job_id: number }) => step.job_id),
    );
    const child = (await call('GET', `/v1/repo/${REPO}/bakes/second`)).body;
    expect(child.status).toBe('complete');
    expect(child.model_name[0]).toMatch(/^admin\/pipes\/second\/\d+$/);
  });
});

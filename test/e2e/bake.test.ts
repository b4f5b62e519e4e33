/**
 * The product end to end on the embedded default: the HTTP API, the job pipeline, the real
 * engine and the toy model. A system prompt is baked in (stim → rollout → bake); on held-out
 * questions the baked model without the prompt behaves as the prompted base model does, and the
 * base model without it does not. A second bake on top of the first keeps the first behaviour
 * and adds another (sequential baking). Both checkpoints then answer through the OpenAI-compatible
 * chat API, concurrently, each with its own adapter chain.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Bread from '@aibread/sdk';
import { serve } from '@hono/node-server';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBake, runRollout, runStim, sampleReplies } from '#local/bake-flow.ts';
import {
  DEMO_BAKE,
  HELD_OUT_QUESTIONS,
  SECOND_TEACHER_PROMPT,
  TEACHER_PROMPT,
  TOY_MODEL,
  hasSignature,
  isUppercase,
} from '#local/demo-recipe.ts';
import { DEFAULT_ENGINE_PYTHON, startLocalServer, type LocalServer } from '#local/server.ts';

const REPO = 'e2e';
let server: LocalServer;
let client: Bread;
let dataDir: string;
let firstCheckpoint: string;
let secondCheckpoint: string;

const rate = (replies: { reply: string }[], detect: (reply: string) => boolean) =>
  replies.filter(({ reply }) => detect(reply)).length / replies.length;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-e2e-'));
  server = await startLocalServer({ port: 0, dataDir, serve });
  client = new Bread({ apiKey: server.adminApiKey, baseURL: server.url });
  await client.repo.create({ repo_name: REPO, base_model: TOY_MODEL });
  await client.prompts.create(REPO, { prompt_name: 'teacher', messages: [{ role: 'system', content: TEACHER_PROMPT }] });
  await client.prompts.create(REPO, { prompt_name: 'student', messages: [] });
});

afterAll(async () => {
  await server?.close();
  // The samplers the server stopped may still be writing their last log lines as they exit.
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

/** Mean per-token KL(teacher ‖ candidate) on teacher replies, from the engine's evaluator. */
function klFromTeacher(candidates: Record<string, string | null>): Record<string, number> {
  const questions = join(dataDir, 'held-out.json');
  writeFileSync(questions, JSON.stringify(HELD_OUT_QUESTIONS));
  const args = ['-m', 'bakehouse_engine', 'kl', '--base', TOY_MODEL, '--teacher-system', TEACHER_PROMPT, '--questions', questions];
  for (const [name, adapter] of Object.entries(candidates)) args.push('--candidate', adapter ? `${name}=${adapter}` : name);
  return JSON.parse(execFileSync(DEFAULT_ENGINE_PYTHON, args, { encoding: 'utf8' })) as Record<string, number>;
}

/** Fetches a checkpoint's archive through its signed download URL and unpacks it. */
async function downloadAdapter(bake: string): Promise<string> {
  const { url } = await client.bakes.download(bake, { repo_name: REPO });
  const archive = Buffer.from(await (await fetch(url)).arrayBuffer());
  const dir = join(dataDir, 'downloads', bake);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'archive.tar.gz'), archive);
  execFileSync('tar', ['-xzf', 'archive.tar.gz'], { cwd: dir });
  return dir;
}

// CPU training and generation: minutes, not seconds.
describe('baking a system prompt into the toy model', { timeout: 20 * 60_000 }, () => {
  it('runs stim, rollout and bake through the API', async () => {
    await client.targets.create(REPO, { target_name: 'uppercase', template: 'default', overrides: DEMO_BAKE.target });
    const stim = await runStim(client, REPO, 'uppercase');
    expect(stim.lines).toBe(48);
    const rollout = await runRollout(client, REPO, 'uppercase');
    expect(rollout.lines).toBe(96);

    await client.bakes.create(REPO, { bake_name: 'first', template: 'default', overrides: DEMO_BAKE.bake });
    const bake = await runBake(client, REPO, 'first');
    expect(bake.status).toBe('complete');
    expect(bake.loss?.final_loss).toBeLessThan(bake.loss?.max_loss ?? 0);
    firstCheckpoint = bake.model_name![0]!;
    expect(firstCheckpoint).toMatch(/^admin\/e2e\/first\/\d+$/);
  });

  it('makes the model uppercase without the prompt, where the base model is not', async () => {
    const base = await sampleReplies(client, { repo: REPO, name: 'eval_base', model: TOY_MODEL, systemPrompt: null, questions: HELD_OUT_QUESTIONS });
    const baked = await sampleReplies(client, { repo: REPO, name: 'eval_baked', model: firstCheckpoint, systemPrompt: null, questions: HELD_OUT_QUESTIONS });
    expect(rate(base, isUppercase)).toBeLessThanOrEqual(0.1);
    expect(rate(baked, isUppercase)).toBeGreaterThanOrEqual(0.9);
  });

  it('brings the unprompted model close to the prompted teacher: KL at most a fifth of the base model’s', async () => {
    const adapter = await downloadAdapter('first');
    const kl = klFromTeacher({ base: null, baked: adapter });
    expect(kl.baked).toBeLessThanOrEqual(0.2 * kl.base!);
  });

  it('keeps the first behaviour and adds a second when baking on top of the first checkpoint', async () => {
    await client.prompts.create(REPO, { prompt_name: 'signature', messages: [{ role: 'system', content: SECOND_TEACHER_PROMPT }] });
    await client.targets.create(REPO, {
      target_name: 'signature',
      template: 'uppercase',
      overrides: { teacher_prompt: 'signature', model_name: firstCheckpoint },
    });
    await runStim(client, REPO, 'signature');
    await runRollout(client, REPO, 'signature');
    await client.bakes.create(REPO, {
      bake_name: 'second',
      template: 'first',
      overrides: {
        datasets: [{ target: 'signature', weight: 1 }],
        model: { parent_model_name: firstCheckpoint },
        optimizer: { learning_rate: 0.01 },
      },
    });
    const bake = await runBake(client, REPO, 'second');
    secondCheckpoint = bake.model_name![0]!;
    const replies = await sampleReplies(client, { repo: REPO, name: 'eval_second', model: secondCheckpoint, systemPrompt: null, questions: HELD_OUT_QUESTIONS });
    expect({ uppercase: rate(replies, isUppercase), signature: rate(replies, hasSignature) }).toEqual({ uppercase: expect.toSatisfy((r: number) => r >= 0.9), signature: expect.toSatisfy((r: number) => r >= 0.9) });
    const tree = await client.repo.getTree(REPO);
    expect(tree.edges).toContainEqual(['bake', 'second', 'bake', 'first']);
  });
});

describe('chatting with baked models through the OpenAI-compatible API', { timeout: 10 * 60_000 }, () => {
  const questions = HELD_OUT_QUESTIONS.slice(0, 6);
  const openai = () => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: server.adminApiKey, maxRetries: 0, timeout: 5 * 60_000 });
  const ask = async (model: string, question: string) => {
    const reply = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: question }], temperature: 0, max_tokens: 96 });
    return { reply: reply.choices[0]!.message.content ?? '' };
  };

  it('answers as baked with no system prompt, where the base model does not', async () => {
    const baked = [];
    const base = [];
    for (const question of questions) {
      baked.push(await ask(firstCheckpoint, question));
      base.push(await ask(TOY_MODEL, question));
    }
    expect(rate(baked, isUppercase)).toBeGreaterThanOrEqual(0.9);
    expect(rate(base, isUppercase)).toBeLessThanOrEqual(0.2);
  });

  it('streams a reply whose deltas add up to the whole answer', async () => {
    const stream = await openai().chat.completions.create({
      model: firstCheckpoint,
      messages: [{ role: 'user', content: questions[0]! }],
      temperature: 0,
      max_tokens: 96,
      stream: true,
    });
    const deltas: string[] = [];
    for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '');
    const whole = await ask(firstCheckpoint, questions[0]!);
    expect(deltas.filter(Boolean).length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe(whole.reply);
    expect(isUppercase(whole.reply)).toBe(true);
  });

  it('gives concurrent requests to two checkpoints each their own adapter chain', async () => {
    const asks = questions.flatMap((question) => [ask(firstCheckpoint, question), ask(secondCheckpoint, question)]);
    const replies = await Promise.all(asks);
    const first = replies.filter((_, index) => index % 2 === 0);
    const second = replies.filter((_, index) => index % 2 === 1);
    expect(rate(first, isUppercase)).toBeGreaterThanOrEqual(0.9);
    expect(rate(first, hasSignature)).toBeLessThanOrEqual(0.2);
    expect(rate(second, isUppercase)).toBeGreaterThanOrEqual(0.9);
    expect(rate(second, hasSignature)).toBeGreaterThanOrEqual(0.9);
  });
});

/**
 * `npm run demo`: the whole bake on the embedded default, end to end. Starts the stack, bakes
 * "Always reply in uppercase letters." into the toy model through the Bread API (stim → rollout
 * → bake), then compares the base model, the base model with the prompt, and the baked model
 * without it on questions it never trained on, and chats with the baked checkpoint through the
 * OpenAI-compatible API.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Bread from '@aibread/sdk';
import { serve } from '@hono/node-server';
import OpenAI from 'openai';
import style from 'picocolors';
import { jobPaths } from '#core/jobs/job-outputs.ts';
import { allOutput, runBake, runRollout, runStim, sampleReplies } from './bake-flow.ts';
import { DEMO_BAKE, HELD_OUT_QUESTIONS, TEACHER_PROMPT, TOY_MODEL, isUppercase } from './demo-recipe.ts';
import { type LossPoint, lossCurve } from './loss-chart.ts';
import { startLocalServer } from './server.ts';
import { ProgressBar, table } from './terminal.ts';

const REPO = 'demo';
const dataDir = resolve(process.env.BAKEHOUSE_DATA_DIR ?? join('.data', 'demo'));
const started = Date.now();

// Each run starts from an empty data dir so it shows the whole pipeline.
rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true });
const server = await startLocalServer({ port: 0, dataDir, serve });
const client = new Bread({ apiKey: server.adminApiKey, baseURL: server.url });
console.log(style.bold('Bakehouse demo: bake a system prompt into the weights'));
console.log(`  API ${server.url} · data ${dataDir}\n`);

try {
  await client.repo.create({ repo_name: REPO, base_model: TOY_MODEL });
  await client.prompts.create(REPO, { prompt_name: 'teacher', messages: [{ role: 'system', content: TEACHER_PROMPT }] });
  await client.prompts.create(REPO, { prompt_name: 'student', messages: [] });
  await client.targets.create(REPO, { target_name: 'uppercase', template: 'default', overrides: DEMO_BAKE.target });
  await client.bakes.create(REPO, { bake_name: 'uppercase_bake', template: 'default', overrides: DEMO_BAKE.bake });
  console.log(`Teacher prompt: ${style.bold(JSON.stringify(TEACHER_PROMPT))}   student prompt: ${style.dim('(none)')}\n`);

  const stimBar = new ProgressBar('stim');
  const stim = await runStim(client, REPO, 'uppercase', (percent, job) => stimBar.update(percent, `${job.lines ?? 0} questions`));
  stimBar.done(`${stim.lines} questions`);
  const rolloutBar = new ProgressBar('rollout');
  const rollout = await runRollout(client, REPO, 'uppercase', (percent, job) => rolloutBar.update(percent, `${job.lines ?? 0} replies`));
  rolloutBar.done(`${rollout.lines} replies from the prompted teacher`);
  const example = (await allOutput(client, REPO, 'uppercase', 'rollout'))[0] as { stimulus: string; response: string };
  console.log(style.dim(`  e.g. ${JSON.stringify(example.stimulus)} → ${JSON.stringify(example.response)}`));

  const bakeBar = new ProgressBar('bake');
  const bake = await runBake(client, REPO, 'uppercase_bake', (percent, job) => {
    const loss = (job as { loss?: { latest_loss?: number } | null }).loss?.latest_loss;
    bakeBar.update(percent, loss === undefined ? '' : `loss ${loss.toPrecision(3)}`);
  });
  bakeBar.done(`final loss ${bake.loss?.final_loss?.toPrecision(3)}`);
  const checkpoint = bake.model_name![0]!;

  console.log(`\nReplies to ${HELD_OUT_QUESTIONS.length} questions the bake never saw (greedy):`);
  const evalBar = new ProgressBar('evaluate');
  const variants = [
    { label: 'base model', model: TOY_MODEL, systemPrompt: null },
    { label: 'base + prompt', model: TOY_MODEL, systemPrompt: TEACHER_PROMPT },
    { label: 'baked, no prompt', model: checkpoint, systemPrompt: null },
  ];
  const results = [];
  for (const [i, variant] of variants.entries()) {
    evalBar.update((i / variants.length) * 100, variant.label);
    const replies = await sampleReplies(client, { repo: REPO, name: `eval_${i}`, model: variant.model, systemPrompt: variant.systemPrompt, questions: HELD_OUT_QUESTIONS });
    results.push({ ...variant, replies, rate: replies.filter(({ reply }) => isUppercase(reply)).length / replies.length });
  }
  evalBar.done('');
  console.log(
    table(
      ['model', 'uppercase', ...HELD_OUT_QUESTIONS.slice(0, 2).map((question) => `“${question}”`)],
      results.map((result) => [result.label, `${Math.round(result.rate * 100)}%`, ...result.replies.slice(0, 2).map(({ reply }) => reply)]),
      40,
    ),
  );

  const chatQuestion = HELD_OUT_QUESTIONS.at(-1)!;
  console.log(`\nChat with ${style.bold(checkpoint)} (OpenAI-compatible API, streamed, no system prompt):`);
  console.log(`  you>   ${chatQuestion}`);
  process.stdout.write('  model> ');
  const chat = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: server.adminApiKey });
  const stream = await chat.chat.completions.create({ model: checkpoint, messages: [{ role: 'user', content: chatQuestion }], temperature: 0, stream: true });
  for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? '');
  process.stdout.write('\n');

  const metrics = (await client.bakes.getMetrics('uppercase_bake', { repo_name: REPO })) as LossPoint[];
  const chart = join(dataDir, 'loss-curve.png');
  const { svg, png } = await lossCurve(metrics, { bake: 'uppercase_bake' });
  writeFileSync(chart, png);
  writeFileSync(join(dataDir, 'loss-curve.svg'), svg);
  const download = await client.bakes.download('uppercase_bake', { repo_name: REPO });
  console.log(`\nLoss curve (${metrics.length} iterations, loss and learning rate): ${chart} (and .svg)`);
  console.log(`Checkpoint: ${style.bold(checkpoint)}`);
  const step = Number(checkpoint.split('/').at(-1));
  const archive = join(dataDir, 'blobs', jobPaths(bake.job_id!).archive(step));
  console.log(`Download (PEFT adapter, valid ${download.expires_in} s while the API runs): ${download.url}`);
  console.log(`  the same archive on disk: ${archive}`);
  const baked = results[2]!;
  const verdict = baked.rate >= 0.9 ? style.green('the baked model behaves as prompted') : style.red('the bake did not take');
  console.log(`\n${verdict}, without the prompt, in ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  console.log(style.dim(`Serve the API yourself with \`BAKEHOUSE_DATA_DIR=${dataDir} npm start\`, then chat: \`npx bakehouse chat ${checkpoint}\`.`));
} finally {
  await server.close();
}

#!/usr/bin/env node
/* global fetch */
// A stand-in for `python -m bakehouse_engine` behind the web console's benchmark (bench/console.ts;
// the browser test runs the real engine): it writes the files the engine contract names
// (functions/schemas/job-spec.ts) in seconds instead of CPU minutes, so the benchmark can time the
// console on a million-line rollout, and shows the console what a real engine shows it over time.
//
// - stim: one line per hardcoded question;
// - rollout: `num_traj_per_stimulus` trajectories per stimulus, written in large appends, so a
//   million-line output takes seconds;
// - bake: a metrics row every CONSOLE_ENGINE_ROW_MS (default 150) up to CONSOLE_ENGINE_BAKE_ROWS
//   (default 20), progress with each, then checkpoints at half and at the end;
// - sampler: the relay client (functions/schemas/relay.ts): it takes chat requests and streams a
//   reply word by word, in upper case when a baked checkpoint's adapters are applied and echoed
//   otherwise, so a comparison shows which side was baked.
import { Buffer } from 'node:buffer';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const [command, specUri] = process.argv.slice(2);
if (command !== 'run' || !specUri) {
  process.stderr.write('usage: console-engine.mjs run <specUri>\n');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(fileURLToPath(specUri), 'utf8'));
const out = fileURLToPath(spec.output_uri);
mkdirSync(out, { recursive: true });

const ROWS = Number(process.env.CONSOLE_ENGINE_BAKE_ROWS ?? 20);
const ROW_MS = Number(process.env.CONSOLE_ENGINE_ROW_MS ?? 150);
/** Lines per append: big enough that a million lines is a few hundred writes. */
const APPEND_BATCH = 20_000;

/** Whole or not at all, as the engine writes its files: the server polls them. */
function writeAtomic(name, text) {
  const path = join(out, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** Appends lines to output.jsonl, then their offsets to output.idx: no offset without its line. */
function appendLines(lines) {
  const output = join(out, 'output.jsonl');
  let offset = existsSync(output) ? statSync(output).size : 0;
  const index = Buffer.alloc(8 * lines.length);
  const text = lines.map((line, i) => {
    const json = `${JSON.stringify(line)}\n`;
    index.writeBigUInt64LE(BigInt(offset), 8 * i);
    offset += Buffer.byteLength(json);
    return json;
  });
  appendFileSync(output, text.join(''));
  appendFileSync(join(out, 'output.idx'), index);
}

const progress = (percent, lines) => writeAtomic('progress.json', JSON.stringify({ percent, lines, updated_at: new Date().toISOString() }));
const finish = (result) => writeAtomic('result.json', JSON.stringify({ status: 'complete', error: null, ...result }));

function stim({ generators, teacher_prompt, student_prompt }) {
  const questions = generators.flatMap((generator) => generator.questions ?? []);
  appendLines(
    questions.map((question, id) => {
      const user = { role: 'user', content: question };
      return {
        stimulus_id: id,
        unconditioned_stimulus: { messages: [...teacher_prompt.messages, user] },
        conditioned_stimulus: { messages: [...student_prompt.messages, user] },
      };
    }),
  );
  progress(100, questions.length);
  finish({ lines: questions.length });
}

function rollout({ stim_output_uri, num_traj_per_stimulus, temperature }) {
  const stimuli = readFileSync(fileURLToPath(stim_output_uri), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  const total = stimuli.length * num_traj_per_stimulus;
  let batch = [];
  let lines = 0;
  for (const stimulus of stimuli) {
    const question = stimulus.unconditioned_stimulus.messages.at(-1).content;
    for (let trajectory = 0; trajectory < num_traj_per_stimulus; trajectory++) {
      batch.push({
        stimulus_id: stimulus.stimulus_id,
        trajectory_id: trajectory,
        stimulus: question,
        unconditioned_stimulus: stimulus.unconditioned_stimulus,
        conditioned_stimulus: stimulus.conditioned_stimulus,
        response: `${question.toUpperCase()} (TRAJECTORY ${trajectory})`,
        tokens: 4,
        temperature,
      });
      if (batch.length === APPEND_BATCH) {
        appendLines(batch);
        lines += batch.length;
        batch = [];
        progress((100 * lines) / total, lines);
      }
    }
  }
  appendLines(batch);
  lines += batch.length;
  progress(100, lines);
  finish({ lines });
}

async function bake() {
  const rows = [];
  const checkpoints = [];
  const save = (step) => {
    writeAtomic(`ckpts/${step}/adapter_config.json`, '{}');
    writeAtomic(`ckpts/${step}.tar.gz`, `stand-in archive of step ${step}`);
    checkpoints.unshift(step);
  };
  for (let iter = 1; iter <= ROWS; iter++) {
    await sleep(ROW_MS);
    rows.push({ iter, loss: 2 * Math.exp(-iter / 4) + 0.01, lr: 1e-4 * Math.min(1, iter / 3), epoch: iter / ROWS, iter_time: ROW_MS / 1000 });
    writeAtomic('metrics.jsonl', rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
    progress((100 * iter) / ROWS, 0);
    if (iter === Math.floor(ROWS / 2)) save(iter);
  }
  save(ROWS);
  const losses = rows.map((row) => row.loss);
  finish({ checkpoints, loss: { latest_loss: losses.at(-1), final_loss: losses.at(-1), min_loss: Math.min(...losses), max_loss: Math.max(...losses) } });
}

async function sampler({ relay_url, relay_token, idle_timeout_s }) {
  const call = (path, body) =>
    fetch(`${relay_url}/v1/relay/samplers/${spec.job_id}/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay_token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  let idleSince = Date.now();
  while (Date.now() - idleSince < idle_timeout_s * 1000) {
    const answer = await call('next', { wait_s: 5, max: 8 }).catch(() => null);
    if (answer?.status === 410) break; // no longer the active sampler
    if (!answer?.ok) {
      await sleep(500);
      continue;
    }
    const { requests } = await answer.json();
    if (requests.length) idleSince = Date.now();
    await Promise.all(requests.map((request) => reply(call, request)));
  }
  finish({});
}

async function reply(call, request) {
  const question = String([...request.messages].reverse().find((message) => message.role === 'user')?.content ?? '');
  const baked = request.model.adapters.length > 0;
  const words = (baked ? question.toUpperCase() : `You said: ${question}`).split(/(?<= )/);
  let seq = 0;
  for (const word of words) {
    await call(`requests/${request.id}/chunks`, { seq: seq++, deltas: [{ index: 0, content: word }], done: null, error: null });
    await sleep(40);
  }
  await call(`requests/${request.id}/chunks`, {
    seq,
    deltas: [],
    done: { choices: [{ index: 0, finish_reason: 'stop', tool_calls: null }], usage: { prompt_tokens: 8, completion_tokens: words.length } },
    error: null,
  });
}

if (spec.kind === 'stim') stim(spec.stim);
else if (spec.kind === 'rollout') rollout(spec.rollout);
else if (spec.kind === 'bake') await bake();
else if (spec.kind === 'sampler') await sampler(spec.sampler);
else {
  writeAtomic('result.json', JSON.stringify({ status: 'failed', error: `The console's stand-in engine does not run ${spec.kind} jobs` }));
  process.exit(1);
}

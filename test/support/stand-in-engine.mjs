#!/usr/bin/env node
/* global fetch */
// A stand-in for `python -m bakehouse_engine` in the tests and benchmarks that run a real local
// server (the real engine takes CPU minutes): it writes the files the engine contract names
// (functions/schemas/job-spec.ts) in seconds.
//
//   stand-in-engine.mjs [--hold-while <file>] [--bake-rows <n>] [--bake-row-interval-ms <ms>] run <specUri>
//
// - stim: one line per hardcoded question;
// - rollout: `num_traj_per_stimulus` lines per stimulus, shaped as the engine writes them, in large
//   appends, so a million-line output takes seconds;
// - bake: --bake-rows metrics rows (default 2), its loss falling from 2.5 to 0.75, one every
//   --bake-row-interval-ms (default 0: all in one write), progress with each; a checkpoint at each
//   step the config's `checkpoint[].save_every_n_steps` asks for, and at the end. With --hold-while,
//   the bake stays running before its last checkpoint while <file> exists, so a client can poll a
//   running bake for as long as it needs;
// - sampler: the relay client (functions/schemas/relay.ts): it takes chat requests and streams a
//   reply word by word, in upper case when a baked checkpoint's adapters are applied and echoed
//   otherwise, so a comparison shows which side was baked.
// test/support/stand-in-engine-command.ts builds this command line for a local server.
import { Buffer } from 'node:buffer';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = 'usage: stand-in-engine.mjs [--hold-while <file>] [--bake-rows <n>] [--bake-row-interval-ms <ms>] run <specUri>\n';
const HOLD_LIMIT_MS = 5 * 60_000;
/** Lines per append: big enough that a million lines is a few hundred writes. */
const APPEND_BATCH = 20_000;

function usageError(problem) {
  process.stderr.write(`${problem}\n${USAGE}`);
  process.exit(2);
}

function parseSettings() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { 'hold-while': { type: 'string' }, 'bake-rows': { type: 'string', default: '2' }, 'bake-row-interval-ms': { type: 'string', default: '0' } },
    });
  } catch (error) {
    usageError(error.message);
  }
  const { values, positionals } = parsed;
  const [command, specUri, ...rest] = positionals;
  if (command !== 'run' || !specUri || rest.length > 0) usageError('Give the command `run` and one job spec URI.');
  const bakeRows = Number(values['bake-rows']);
  if (!Number.isInteger(bakeRows) || bakeRows < 1) usageError(`--bake-rows must be a whole number of at least 1, not ${values['bake-rows']}.`);
  const rowIntervalMs = Number(values['bake-row-interval-ms']);
  if (!Number.isFinite(rowIntervalMs) || rowIntervalMs < 0) usageError(`--bake-row-interval-ms must be a number of milliseconds, not ${values['bake-row-interval-ms']}.`);
  return { specUri, holdFile: values['hold-while'], bakeRows, rowIntervalMs };
}

const settings = parseSettings();
const spec = JSON.parse(readFileSync(fileURLToPath(settings.specUri), 'utf8'));
const out = fileURLToPath(spec.output_uri);
mkdirSync(out, { recursive: true });

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
const fail = (error) => {
  writeAtomic('result.json', JSON.stringify({ status: 'failed', error }));
  process.exit(1);
};

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

/** From 2.5 at the first row to 0.75 at the last, by the same factor each row, however many rows. */
const lossAt = (iter, rows) => 2.5 * 0.3 ** (rows === 1 ? 1 : (iter - 1) / (rows - 1));

async function bake({ config }) {
  const { bakeRows, rowIntervalMs, holdFile } = settings;
  const everySteps = (config.checkpoint ?? []).filter((entry) => entry.enabled !== false && entry.save_every_n_steps).map((entry) => entry.save_every_n_steps);
  const rows = [];
  const checkpoints = [];
  const save = (step) => {
    writeAtomic(`ckpts/${step}/adapter_config.json`, '{}');
    writeAtomic(`ckpts/${step}.tar.gz`, `stand-in archive of step ${step}`);
    checkpoints.unshift(step);
  };
  for (let iter = 1; iter <= bakeRows; iter++) {
    if (rowIntervalMs > 0) await sleep(rowIntervalMs);
    rows.push({ iter, loss: lossAt(iter, bakeRows), lr: 1e-4, epoch: iter / bakeRows, iter_time: rowIntervalMs / 1000 });
    if (iter < bakeRows && everySteps.some((every) => iter % every === 0)) save(iter);
    // Unpaced, the rows land in one write, so a reader sees the whole log or none of it.
    if (rowIntervalMs > 0 || iter === bakeRows) {
      writeAtomic('metrics.jsonl', rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
      // The last step's share of progress comes with its checkpoint, written below.
      progress((100 * Math.min(iter, bakeRows - 1)) / bakeRows, 0);
    }
  }
  const deadline = Date.now() + HOLD_LIMIT_MS;
  while (holdFile !== undefined && existsSync(holdFile)) {
    if (Date.now() > deadline) fail(`The stand-in bake was held longer than ${HOLD_LIMIT_MS} ms`);
    await sleep(50);
  }
  save(bakeRows);
  progress(100, 0);
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
else if (spec.kind === 'bake') await bake(spec.bake);
else if (spec.kind === 'sampler') await sampler(spec.sampler);
else fail(`The stand-in engine does not run ${spec.kind} jobs`);

#!/usr/bin/env node
// A stand-in for `python -m bakehouse_engine` in the tests and benchmarks that run a real local
// server (the real engine takes CPU minutes): it writes the files the engine contract names
// (functions/schemas/job-spec.ts) in seconds.
//
//   stand-in-engine.mjs [--hold-while <file>] run <specUri>
//
// - stim: one line per hardcoded question;
// - rollout: `num_traj_per_stimulus` lines per stimulus, shaped as the engine writes them, in large
//   appends, so a million-line output takes seconds;
// - bake: two metrics rows, loss 2.5 then 0.75, in one write; a checkpoint at each step the
//   config's `checkpoint[].save_every_n_steps` asks for, and at the end. With --hold-while, the
//   bake stays running before its last checkpoint while <file> exists, so a client can poll a
//   running bake for as long as it needs.
// test/support/stand-in-engine-command.ts builds this command line for a local server.
import { Buffer } from 'node:buffer';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = 'usage: stand-in-engine.mjs [--hold-while <file>] run <specUri>\n';
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
      options: { 'hold-while': { type: 'string' } },
    });
  } catch (error) {
    usageError(error.message);
  }
  const { values, positionals } = parsed;
  const [command, specUri, ...rest] = positionals;
  if (command !== 'run' || !specUri || rest.length > 0) usageError('Give the command `run` and one job spec URI.');
  return { specUri, holdFile: values['hold-while'] };
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

const LOSSES = [2.5, 0.75];

async function bake({ config }) {
  const everySteps = (config.checkpoint ?? []).filter((entry) => entry.enabled !== false && entry.save_every_n_steps).map((entry) => entry.save_every_n_steps);
  const steps = LOSSES.length;
  const checkpoints = [];
  const save = (step) => {
    writeAtomic(`ckpts/${step}/adapter_config.json`, '{}');
    writeAtomic(`ckpts/${step}.tar.gz`, `stand-in archive of step ${step}`);
    checkpoints.unshift(step);
  };
  for (let step = 1; step < steps; step++) if (everySteps.some((every) => step % every === 0)) save(step);
  writeAtomic('metrics.jsonl', LOSSES.map((loss, index) => `${JSON.stringify({ iter: index + 1, loss, lr: 1e-4, epoch: (index + 1) / steps, iter_time: 0 })}\n`).join(''));
  // The last step's share of progress comes with its checkpoint, written below.
  progress((100 * (steps - 1)) / steps, 0);
  const deadline = Date.now() + HOLD_LIMIT_MS;
  while (settings.holdFile !== undefined && existsSync(settings.holdFile)) {
    if (Date.now() > deadline) fail(`The stand-in bake was held longer than ${HOLD_LIMIT_MS} ms`);
    await sleep(50);
  }
  save(steps);
  progress(100, 0);
  finish({ checkpoints, loss: { latest_loss: LOSSES.at(-1), final_loss: LOSSES.at(-1), min_loss: Math.min(...LOSSES), max_loss: Math.max(...LOSSES) } });
}

if (spec.kind === 'stim') stim(spec.stim);
else if (spec.kind === 'rollout') rollout(spec.rollout);
else if (spec.kind === 'bake') await bake(spec.bake);
else fail(`The stand-in engine does not run ${spec.kind} jobs`);

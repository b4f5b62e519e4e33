#!/usr/bin/env node
// A stand-in for `python -m bakehouse_engine` in the client tests only, so a real local server
// runs stim, rollout and bake jobs in a second instead of CPU minutes:
// `stand-in-engine.mjs [--hold-while <file>] run <specUri>` writes the files the engine contract
// names (functions/schemas/job-spec.ts). A bake writes its metrics and progress, then stays
// running while <file> exists, so a client can poll a running bake for as long as it needs.
import { Buffer } from 'node:buffer';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const HOLD_LIMIT_MS = 5 * 60_000;

const args = process.argv.slice(2);
const holdFile = args[0] === '--hold-while' ? args[1] : undefined;
const [command, specUri] = args.slice(holdFile === undefined ? 0 : 2);
if (command !== 'run' || !specUri) {
  process.stderr.write('usage: stand-in-engine.mjs [--hold-while <file>] run <specUri>\n');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(fileURLToPath(specUri), 'utf8'));
const out = fileURLToPath(spec.output_uri);
mkdirSync(out, { recursive: true });

/** Whole or not at all, as the engine writes its files: the server polls them. */
function writeAtomic(name, text) {
  const path = join(out, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** One line of output.jsonl, then its offset in output.idx: readers never see an offset without its line. */
function appendLine(line) {
  const output = join(out, 'output.jsonl');
  const offset = existsSync(output) ? statSync(output).size : 0;
  appendFileSync(output, `${JSON.stringify(line)}\n`);
  const index = Buffer.alloc(8);
  index.writeBigUInt64LE(BigInt(offset));
  appendFileSync(join(out, 'output.idx'), index);
}

const progress = (percent, lines) => writeAtomic('progress.json', JSON.stringify({ percent, lines, updated_at: new Date().toISOString() }));
const finish = (result) => writeAtomic('result.json', JSON.stringify({ status: 'complete', error: null, ...result }));

function stim({ generators, teacher_prompt, student_prompt }) {
  const questions = generators.flatMap((generator) => generator.questions ?? []);
  questions.forEach((question, id) => {
    const user = { role: 'user', content: question };
    appendLine({
      stimulus_id: id,
      unconditioned_stimulus: { messages: [...teacher_prompt.messages, user] },
      conditioned_stimulus: { messages: [...student_prompt.messages, user] },
    });
  });
  progress(100, questions.length);
  finish({ lines: questions.length });
}

function rollout({ stim_output_uri, num_traj_per_stimulus, temperature }) {
  const stimuli = readFileSync(fileURLToPath(stim_output_uri), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  let lines = 0;
  for (const stimulus of stimuli) {
    for (let trajectory = 0; trajectory < num_traj_per_stimulus; trajectory++) {
      const response = `ANSWER ${stimulus.stimulus_id}.${trajectory}`;
      const messages = [...stimulus.unconditioned_stimulus.messages, { role: 'assistant', content: response }];
      appendLine({ stimulus_id: stimulus.stimulus_id, trajectory_id: trajectory, response, tokens: 3, temperature, messages });
      lines++;
    }
  }
  progress(100, lines);
  finish({ lines });
}

async function bake() {
  const rows = [
    { iter: 1, loss: 2.5, lr: 1e-4, epoch: 0.5 },
    { iter: 2, loss: 0.75, lr: 1e-4, epoch: 1 },
  ];
  writeAtomic('metrics.jsonl', rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
  progress(50, 0);
  const deadline = Date.now() + HOLD_LIMIT_MS;
  while (holdFile !== undefined && existsSync(holdFile)) {
    if (Date.now() > deadline) {
      writeAtomic('result.json', JSON.stringify({ status: 'failed', error: `The stand-in bake was held longer than ${HOLD_LIMIT_MS} ms` }));
      process.exit(1);
    }
    await sleep(50);
  }
  writeAtomic('ckpts/2/adapter_config.json', '{}');
  writeAtomic('ckpts/2.tar.gz', 'stand-in archive of step 2');
  const losses = rows.map((row) => row.loss);
  progress(100, 0);
  finish({ checkpoints: [2], loss: { latest_loss: losses.at(-1), final_loss: losses.at(-1), min_loss: Math.min(...losses), max_loss: Math.max(...losses) } });
}

if (spec.kind === 'stim') stim(spec.stim);
else if (spec.kind === 'rollout') rollout(spec.rollout);
else if (spec.kind === 'bake') await bake();
else {
  writeAtomic('result.json', JSON.stringify({ status: 'failed', error: `The stand-in engine does not run ${spec.kind} jobs` }));
  process.exit(1);
}

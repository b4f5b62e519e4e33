/* global fetch, setTimeout */
/**
 * A stand-in engine for the embedded server restart test: `fake-trainer-engine.mjs run <spec>`.
 * It plays a trainer job the way batch/engine's trainer does over its relay: ready, then long
 * polls for operations, retrying a relay it cannot reach for 120 s (trainer/relay.py via
 * sampler/relay.py GIVE_UP_AFTER_S), answering each operation, and exiting complete after
 * `idle_timeout_s` without activity.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GIVE_UP_AFTER_S = 120;
const spec = JSON.parse(readFileSync(fileURLToPath(process.argv[3]), 'utf8'));
const { relay_url: relayUrl, relay_token: token, idle_timeout_s: idleTimeoutS } = spec.trainer;
const base = `${relayUrl}/v1/relay/trainers/${spec.job_id}`;
/** The test reads which trainer processes started and ended from here. */
const log = (event) => appendFileSync(process.env.FAKE_TRAINER_LOG, `${event} ${process.pid}\n`);

async function call(path, body) {
  const deadline = Date.now() + GIVE_UP_AFTER_S * 1000;
  for (;;) {
    try {
      const response = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (response.status === 410) return undefined;
      if (response.ok) return await response.json();
      if (response.status < 500 && response.status !== 429) throw new Error(`relay answered ${response.status}: ${await response.text()}`);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // fetch's connection failures
    }
    if (Date.now() > deadline) throw new Error(`the relay at ${relayUrl} was unreachable for ${GIVE_UP_AFTER_S} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

log('started');
await call('/ready', { step: 0, lora_config: { r: spec.trainer.lora_rank, lora_alpha: 32, target_modules: ['q_proj'] } });
let step = 0;
let lastOperation = Date.now();
for (;;) {
  const next = await call('/next', { wait_s: 0.5 });
  if (!next) break;
  if (next.operation) {
    const { operation } = next.operation;
    if (operation.kind === 'optim_step') step += 1;
    const result = operation.kind === 'optim_step' ? { step, learning_rate: operation.adam.learning_rate, grad_norm: 0 } : { step };
    await call(`/operations/${encodeURIComponent(next.operation.id)}/result`, { status: 'done', result });
    lastOperation = Date.now();
    continue;
  }
  if (Math.min(next.idle_s, (Date.now() - lastOperation) / 1000) >= idleTimeoutS) break;
}
writeFileSync(join(fileURLToPath(spec.output_uri), 'result.json'), JSON.stringify({ status: 'complete', error: null }));
log('exited');

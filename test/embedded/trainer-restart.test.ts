/**
 * Stopping the embedded server stops its samplers but not its trainers (README, "Training runs
 * across a server stop"): a trainer process keeps running, retries its relay, is served again by
 * the next start over the same data dir, and still scales to zero after the run's
 * `scale_down_delay_seconds` without activity.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterEach, expect, it, vi } from 'vitest';
import type { SubmittedOperation } from '#core/training/model.ts';
import { startLocalServer, type LocalServer } from '#functions/local/server.ts';
import { actorOf } from '#test/support/training.ts';

const FAKE_ENGINE = join(import.meta.dirname, 'fake-trainer-engine.mjs');
const ALICE = actorOf('alice');
const OPTIM: SubmittedOperation = { kind: 'optim_step', adam: { learning_rate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 } };
/** Long enough to outlast a restart, short enough to watch the trainer scale to zero. */
const SCALE_DOWN_S = 8;

const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-trainer-restart-'));
const trainerLog = join(dataDir, 'trainers.log');
process.env.FAKE_TRAINER_LOG = trainerLog;
const servers: LocalServer[] = [];

afterEach(async () => {
  for (const server of servers) await server.close().catch(() => undefined);
  // Trainers outlive their server by design: stop the ones this test started.
  const lines = existsSync(trainerLog) ? readFileSync(trainerLog, 'utf8').trim().split('\n') : [];
  const exited = new Set(lines.filter((line) => line.startsWith('exited')).map((line) => line.split(' ')[1]));
  for (const pid of lines.filter((line) => line.startsWith('started')).map((line) => line.split(' ')[1]!)) {
    if (!exited.has(pid)) process.kill(Number(pid));
  }
  // A killed engine's wrapper may still be writing its exit file into the data dir: retry the removal.
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

const start = async (port: number) => {
  const server = await startLocalServer({ serve, port, dataDir, engineCommand: [process.execPath, FAKE_ENGINE] });
  servers.push(server);
  return server;
};
const trainerEvents = () => readFileSync(trainerLog, 'utf8').trim().split('\n').map((line) => line.split(' ')[0]);

async function optimStep(server: LocalServer, runId: string, key: string) {
  const { operations } = server.runtime.services.training;
  await operations.submit(ALICE, runId, { idempotencyKey: key, operation: OPTIM });
  return vi.waitFor(
    async () => {
      const view = await operations.poll(ALICE, runId, key, { holdMs: 500 });
      if (view?.status !== 'done') throw new Error(`operation ${key} is ${view?.status}`);
      return view.result;
    },
    { timeout: 20_000, interval: 10 },
  );
}

it('keeps a trainer running across a server restart, serves it again, and lets it scale to zero when idle', async () => {
  const first = await start(0);
  const { training } = first.runtime.services;
  const session = await training.sessions.create(ALICE, { trainingProjectId: null });
  const run = await training.runs.create(ALICE, {
    sessionId: session.id, protocol: 'loops', baseModel: 'bakehouse/toy-instruct', loraRank: 8, seed: null, maxSeqLen: null, name: null,
    availabilityModel: 'dedicated', scaleDownDelaySeconds: SCALE_DOWN_S, fromPath: null, relayUrl: first.url,
  });
  expect(await optimStep(first, run.id, 'before-restart')).toMatchObject({ step: 1 });

  await first.close();
  // The relay URL the trainer holds is this origin: the next start listens on the same port.
  const second = await start(Number(new URL(first.url).port));
  expect(await optimStep(second, run.id, 'after-restart')).toMatchObject({ step: 2 });
  // One trainer process served both servers: the same model state carried on.
  expect(trainerEvents()).toEqual(['started']);

  await vi.waitFor(() => expect(trainerEvents()).toEqual(['started', 'exited']), { timeout: (SCALE_DOWN_S + 15) * 1000, interval: 200 });
  // Scaling to zero is not a failure: the run still takes operations, on a new trainer.
  await vi.waitFor(async () => expect((await second.runtime.services.training.runs.get(ALICE, run.id)).state).not.toBe('failed'), { timeout: 5000 });
  expect(await optimStep(second, run.id, 'after-scale-down')).toMatchObject({ step: expect.any(Number) });
  expect(trainerEvents()).toEqual(['started', 'exited', 'started']);
}, 90_000);

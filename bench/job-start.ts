/**
 * Time from `POST …/bakes/{b}` to the engine process running, on the embedded default with the
 * real engine: the HTTP call, the job record, the in-process queue, dispatch and the spawn.
 * Stim and rollout run first (tiny, on the toy model) so the bake's prerequisites hold. The
 * baseline is the same measurement for a stim job, whose start does the least work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { keys } from '#core/keys.ts';
import { startLocalServer } from '#local/server.ts';
import { jsonCaller, round } from './stats.ts';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 5);

export async function benchJobStart(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-start-'));
  const server = await startLocalServer({ port: 0, dataDir, serve, engineConcurrency: 4 });
  const call = jsonCaller((path, init) => fetch(`${server.url}${path}`, init), server.adminApiKey);
  const until = async (path: string, status: string) => {
    for (;;) {
      const job = await call('GET', path);
      if (job.status === status) return job;
      if (job.status === 'failed') throw new Error(`${path} failed: ${String(job.error)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  /** Milliseconds from the POST to the engine process running (the job record's `running`). */
  const timeToRunning = async (path: string) => {
    const started = performance.now();
    const job = await call('POST', path);
    for (;;) {
      const record = await server.runtime.store.get(keys.job(job.job_id as number));
      if (record?.state === 'running' || record?.state === 'complete' || record?.state === 'failed') return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };

  try {
    await call('POST', '/v1/repo', { repo_name: 'bench', base_model: 'bakehouse/toy-instruct' });
    await call('POST', '/v1/repo/bench/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
    await call('POST', '/v1/repo/bench/prompts', { prompt_name: 'student', messages: [] });
    const target = (name: string) =>
      call('POST', '/v1/repo/bench/targets', {
        target_name: name,
        template: 'default',
        overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['Why is the sky blue?'] }], max_tokens: 8 },
      });

    await target('ready');
    await call('POST', '/v1/repo/bench/targets/ready/stim');
    await until('/v1/repo/bench/targets/ready/stim', 'complete');
    await call('POST', '/v1/repo/bench/targets/ready/rollout');
    await until('/v1/repo/bench/targets/ready/rollout', 'complete');

    const bake: number[] = [];
    const stim: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await call('POST', '/v1/repo/bench/bakes', { bake_name: `b${i}`, template: 'default', overrides: { datasets: [{ target: 'ready' }] } });
      bake.push(await timeToRunning(`/v1/repo/bench/bakes/b${i}`));
      await call('DELETE', `/v1/repo/bench/bakes/b${i}`); // stops the engine: only its start is measured
      await target(`s${i}`);
      stim.push(await timeToRunning(`/v1/repo/bench/targets/s${i}/stim`));
      await call('DELETE', `/v1/repo/bench/targets/s${i}`);
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    return {
      runs: RUNS,
      bakePostToEngineRunningMedianMs: round(median(bake), 1),
      stimPostToEngineRunningMedianMs: round(median(stim), 1),
      bakeVsStim: round(median(bake) / median(stim), 2),
      allBakeMs: bake.map((ms) => round(ms, 1)),
    };
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * `npx tsx bench/batch-event-loop.ts`: how long one large prompt batch keeps the event loop from
 * other requests, on the SQLite store (a file, as `npm start` uses). For each batch size, over
 * RUNS runs after a warm-up: the longest stretch the loop was blocked while the batch ran (every
 * other request, `/v1/health` included, may wait that long), in wall and CPU time, and the batch's
 * own time.
 * Prints JSON; medians of the runs.
 */
import { loadavg } from 'node:os';
import { BENCH_KEY, embeddedBenchApp } from './embedded-app.ts';
import { round } from './stats.ts';

const SIZES = [1_000, 60_000];

const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/**
 * The longest stretch between turns of the event loop while `work` runs, in wall time and in CPU
 * time (the CPU figure is the work itself; on a busy machine the wall figure adds waiting for a core).
 */
async function blocking<T>(work: () => Promise<T>) {
  let last = { wall: performance.now(), cpu: cpuMs() };
  let maxBlockMs = 0;
  let maxBlockCpuMs = 0;
  let running = true;
  const tick = () => {
    const now = { wall: performance.now(), cpu: cpuMs() };
    maxBlockMs = Math.max(maxBlockMs, now.wall - last.wall);
    maxBlockCpuMs = Math.max(maxBlockCpuMs, now.cpu - last.cpu);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  const result = await work();
  const totalMs = performance.now() - start;
  running = false;
  tick();
  return { result, maxBlockMs, maxBlockCpuMs, totalMs };
}

const { app, close } = await embeddedBenchApp();
const headers = { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' };
await app.request('/v1/repo', { method: 'POST', headers, body: JSON.stringify({ repo_name: 'bench' }) });

const RUNS = 3;
const batch = async (names: string[]) => {
  const prompts = Object.fromEntries(names.map((name, i) => [name, [{ role: 'user', content: `hi ${i}` }]]));
  const body = JSON.stringify({ prompts });
  return { body, ...(await blocking(async () => app.request('/v1/repo/bench/prompts/batch', { method: 'POST', headers, body }))) };
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

await batch(Array.from({ length: 100 }, (_, i) => `warm_${i}`));
const results: Record<string, unknown> = {};
for (const size of SIZES) {
  const runs = [];
  for (let run = 0; run < RUNS; run++) runs.push(await batch(Array.from({ length: size }, (_, i) => `s${size}_r${run}_p${i}`)));
  results[`${size} entries (${round(runs[0]!.body.length / 1e6, 1)} MB)`] = {
    status: runs[0]!.result.status,
    maxEventLoopBlockMs: round(median(runs.map((run) => run.maxBlockMs)), 1),
    maxEventLoopBlockCpuMs: round(median(runs.map((run) => run.maxBlockCpuMs)), 1),
    batchMs: round(median(runs.map((run) => run.totalMs)), 1),
  };
}
await close();
console.log(JSON.stringify({ recorded_at: new Date().toISOString(), node: process.version, loadAverage: loadavg()[0], results }, null, 2));

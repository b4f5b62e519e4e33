/** How a benchmark records its results: stamped with the time and the machine, in bench/results/. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { round } from './stats.ts';

/** Writes bench/results/<name>.json (and prints it): `measured` after when and where it ran. */
export function recordResults(name: string, measured: Record<string, unknown>): void {
  const results = {
    recorded_at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadavg_1m: round(loadavg()[0]!, 2) },
    ...measured,
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/${name}.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

/**
 * `npm run bench:loops`: the Loops training path on the embedded default — the official
 * `baseten-loops` SDK (bench/loops_sdk.py, in test/clients/loops/.venv), the local server, the
 * relay (Store queue, long polls) and the engine's trainer on the toy model.
 *
 * - the time per `forward_backward` + `optim_step` round trip as the SDK sees it, for a small batch
 *   and a ~1 MiB one, against the engine's own time for the very same two operations (what the
 *   trainer logs for each operation it executes: `operation <id> (<kind>): done in <s> s`), so the
 *   ratio is the whole path over the engine-only baseline, both measured in the same run;
 * - the cold start: trainer created until its `/health` answers 200, and the SDK's
 *   `create_lora_training_client` (which polls `/health` every 10 s, then runs `init_trainer_server`).
 *
 * Results go to bench/results/loops.json; bench/RESULTS.md records them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { startLocalServer } from '#local/server.ts';
import { recordResults } from './record.ts';
import { quantile, round } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const PYTHON = join(ROOT, 'test', 'clients', 'loops', '.venv', 'bin', 'python');

interface Round {
  ms: number;
  forward_backward: string;
  optim_step: string;
}
interface DriverOutput {
  run_id: string;
  cold_starts: { create_ms: number; health_200_ms: number }[];
  sdk_create_lora_training_client_ms: number;
  batches: Record<string, { datums: number; tokens: number; data_bytes: number; rounds: Round[] }>;
}

/** Seconds the trainers spent executing each operation, by operation id, from their engine logs. */
function engineTimes(dataDir: string): Map<string, number> {
  const times = new Map<string, number>();
  const logs = readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('engine.log'));
  for (const log of logs) {
    for (const match of readFileSync(join(dataDir, log), 'utf8').matchAll(/operation (\S+) \((\w+)\): done in ([\d.]+) s/g)) {
      times.set(match[1]!, Number(match[3]) * 1000);
    }
  }
  return times;
}

const median = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5);

export async function benchLoops(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-loops-'));
  const server = await startLocalServer({ port: 0, dataDir, serve, engineConcurrency: 2 });
  try {
    const { stdout } = await promisify(execFile)(PYTHON, [join(ROOT, 'bench', 'loops_sdk.py')], {
      env: { ...process.env, LOOPS_BASE_URL: server.url, BASETEN_API_KEY: server.adminApiKey, HF_HUB_OFFLINE: '1' },
      maxBuffer: 16 * 1024 * 1024,
    });
    const driver = JSON.parse(stdout) as DriverOutput;
    const engine = engineTimes(dataDir);
    const engineMs = (id: string) => {
      const ms = engine.get(id);
      if (ms === undefined) throw new Error(`The trainer's log has no time for operation ${id}; has its log line changed?`);
      return ms;
    };
    const batches = Object.fromEntries(
      Object.entries(driver.batches).map(([name, batch]) => {
        const roundTrip = batch.rounds.map(({ ms }) => ms);
        const engineOnly = batch.rounds.map((round_) => engineMs(round_.forward_backward) + engineMs(round_.optim_step));
        const overhead = batch.rounds.map((round_, index) => round_.ms - engineOnly[index]!);
        return [
          name,
          {
            datums: batch.datums,
            tokens: batch.tokens,
            data_mib: round(batch.data_bytes / 2 ** 20, 3),
            rounds: batch.rounds.length,
            round_trip_median_ms: round(median(roundTrip)),
            round_trip_max_ms: round(Math.max(...roundTrip)),
            engine_only_median_ms: round(median(engineOnly)),
            overhead_median_ms: round(median(overhead)),
            ratio_round_trip_vs_engine: round(median(roundTrip) / median(engineOnly), 2),
          },
        ];
      }),
    );
    return {
      model: 'bakehouse/toy-instruct',
      lora_rank: 8,
      cold_start: {
        starts: driver.cold_starts,
        health_200_median_ms: round(median(driver.cold_starts.map(({ health_200_ms: ms }) => ms))),
        sdk_create_lora_training_client_ms: driver.sdk_create_lora_training_client_ms,
      },
      forward_backward_plus_optim_step: batches,
    };
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

if (process.argv[1] === import.meta.filename) {
  recordResults('loops', { loops_embedded: await benchLoops() });
}

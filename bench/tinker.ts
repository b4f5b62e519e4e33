/**
 * `npm run bench:tinker`: the Tinker protocol's costs, measured in one run.
 *
 * - Decode: one `forward_backward` request of about 1 MiB, written by the tinker 0.38.0 SDK
 *   (bench/tinker_sdk.py: its own protobuf encoder, then zstd as with `proto_compress_fwdbwd`), and
 *   the same request as the JSON body SDKs up to 0.24 send; each turned into the training
 *   service's operation exactly as the route does (zstd + protobuf codec, or JSON.parse + zod +
 *   the Tinker wire translation), timed in-process.
 * - Overhead per operation: on the embedded default (local server, relay, the engine's trainer on
 *   the toy model), `forward_backward` + `optim_step` submitted back to back by the SDK and both
 *   results back, for a batch of a few hundred tokens and one of 4,096, against the engine's own time for the same
 *   two operations (the trainer logs `operation <id> (<kind>): done in <s> s` for each; the
 *   benchmark's run is the trainer's only one, so rounds pair with its log in order).
 *
 * Results go to bench/results/tinker.json; bench/RESULTS.md records them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { decodeForwardBackwardRequest } from '#http/routes/tinker/proto/codec.ts';
import { jsonForward, toForward } from '#http/routes/tinker/wire.ts';
import { startLocalServer } from '#local/server.ts';
import { ForwardBackwardRequest } from '#schemas/tinker.ts';
import { tinkerPython } from '#test/clients/tinker/environments.ts';
import { recordResults } from './record.ts';
import { measure, quantile, round } from './stats.ts';

const DRIVER = join(import.meta.dirname, 'tinker_sdk.py');
const exec = promisify(execFile);

async function driver(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>> {
  const { stdout } = await exec(tinkerPython('0.38.0'), [DRIVER, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const median = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5);

async function benchDecode(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-tinker-'));
  try {
    const sizes = await driver(['request', dir]);
    const compressed = new Uint8Array(readFileSync(join(dir, 'request.binpb.zst')));
    const text = readFileSync(join(dir, 'request.json'), 'utf8');
    const fromProtobuf = () => toForward(decodeForwardBackwardRequest(compressed, 'zstd'), true);
    const fromJson = () => jsonForward(ForwardBackwardRequest.parse(JSON.parse(text)).forward_backward_input, true);
    // Both paths must read the same operation, or the comparison means nothing.
    if (!isDeepStrictEqual(fromProtobuf(), fromJson())) throw new Error('The protobuf and JSON requests decode to different operations.');
    const protobuf = await measure(30, 5, async () => fromProtobuf());
    const json = await measure(30, 5, async () => fromJson());
    return {
      request: sizes,
      protobuf_zstd: protobuf,
      json,
      ratio_json_vs_protobuf_zstd_p50: round(json.p50Ms / protobuf.p50Ms, 2),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The seconds the trainer spent on each forward and optim_step, in execution order. */
function engineTimes(dataDir: string): { kind: string; ms: number }[] {
  const logs = readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('engine.log'));
  const times = logs.flatMap((log) =>
    [...readFileSync(join(dataDir, log), 'utf8').matchAll(/operation \S+ \((\w+)\): done in ([\d.]+) s/g)].map((match) => ({ kind: match[1]!, ms: Number(match[2]) * 1000 })),
  );
  return times.filter(({ kind }) => kind === 'forward' || kind === 'optim_step');
}

interface Batch {
  datums: number;
  tokens: number;
  warm_up_rounds: number;
  round_ms: number[];
}

async function benchOverhead(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-tinker-'));
  const server = await startLocalServer({ port: 0, dataDir, serve, engineConcurrency: 2 });
  try {
    const rounds = (await driver(['rounds'], {
      ...process.env,
      TINKER_BASE_URL: `${server.url}/tinker`,
      TINKER_API_KEY: `tml-${server.adminApiKey}`,
      HF_HUB_OFFLINE: '1',
    })) as { model_id: string; create_lora_training_client_ms: number; batches: Record<string, Batch> };
    const engine = engineTimes(dataDir);
    let next = 0;
    const batches = Object.fromEntries(
      Object.entries(rounds.batches).map(([name, batch]) => {
        // Each round is one forward then one optim_step in the log; warm-up rounds come first.
        const pairs = Array.from({ length: batch.warm_up_rounds + batch.round_ms.length }, () => {
          const [forward, step] = [engine[next++], engine[next++]];
          if (forward?.kind !== 'forward' || step?.kind !== 'optim_step') throw new Error("The trainer's log does not pair with the rounds; has its log line changed?");
          return forward.ms + step.ms;
        }).slice(batch.warm_up_rounds);
        const overhead = batch.round_ms.map((ms, index) => ms - pairs[index]!);
        return [
          name,
          {
            datums: batch.datums,
            tokens: batch.tokens,
            rounds: batch.round_ms.length,
            round_trip_median_ms: round(median(batch.round_ms)),
            engine_only_median_ms: round(median(pairs)),
            overhead_per_round_median_ms: round(median(overhead)),
            overhead_per_operation_median_ms: round(median(overhead) / 2),
            ratio_round_trip_vs_engine: round(median(batch.round_ms) / median(pairs), 2),
          },
        ];
      }),
    );
    return { model: 'bakehouse/toy-instruct', lora_rank: 8, create_lora_training_client_ms: rounds.create_lora_training_client_ms, forward_backward_plus_optim_step: batches };
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

if (process.argv[1] === import.meta.filename) {
  recordResults('tinker', {
    sdk: 'tinker 0.38.0',
    decode_forward_backward_request: await benchDecode(),
    gateway_overhead: await benchOverhead(),
  });
}

/**
 * `npm run bench:chat`: a warm sampler on the toy model through the whole chat path on the
 * embedded default — the official `openai` client, the local server, the relay (Store inbox and
 * chunks) and the engine's sampler — with streamed replies. Measures time to first token and
 * tokens/s for one stream at a time, then for 8 concurrent streams; the one-stream figures are
 * the baseline the concurrent ones are compared with. Results go to bench/results/chat.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import OpenAI from 'openai';
import { HELD_OUT_QUESTIONS, TOY_MODEL } from '#local/demo-recipe.ts';
import { startLocalServer } from '#local/server.ts';
import { recordResults } from './record.ts';
import { quantile, round } from './stats.ts';

const ROUNDS = Number(process.env.BENCH_CHAT_ROUNDS ?? 4);
const CONCURRENCY = 8;
/** Long enough replies that decoding, not set-up, dominates; the toy model stops early at times. */
const MAX_TOKENS = 64;

interface StreamTiming {
  ttftMs: number;
  totalMs: number;
  tokens: number;
}

async function timedStream(client: OpenAI, question: string): Promise<StreamTiming> {
  const started = performance.now();
  const stream = await client.chat.completions.create({
    model: TOY_MODEL,
    messages: [{ role: 'user', content: question }],
    temperature: 0,
    max_tokens: MAX_TOKENS,
    stream: true,
    stream_options: { include_usage: true },
  });
  let firstToken: number | undefined;
  let tokens = 0;
  for await (const chunk of stream) {
    if (firstToken === undefined && chunk.choices[0]?.delta.content) firstToken = performance.now();
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  const ended = performance.now();
  return { ttftMs: (firstToken ?? ended) - started, totalMs: ended - started, tokens };
}

function summarise(streams: StreamTiming[], wallMs: number) {
  const ttft = streams.map((stream) => stream.ttftMs).sort((a, b) => a - b);
  const tokens = streams.reduce((sum, stream) => sum + stream.tokens, 0);
  const perStream = streams.map((stream) => stream.tokens / ((stream.totalMs - stream.ttftMs) / 1000 || Infinity)).sort((a, b) => a - b);
  return {
    streams: streams.length,
    ttft_p50_ms: round(quantile(ttft, 0.5)),
    ttft_p95_ms: round(quantile(ttft, 0.95)),
    tokens_per_s_per_stream_median: round(quantile(perStream, 0.5)),
    tokens_per_s_aggregate: round(tokens / (wallMs / 1000)),
    mean_completion_tokens: round(tokens / streams.length),
  };
}

export async function benchChat(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-chat-'));
  const server = await startLocalServer({ port: 0, dataDir, serve });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: server.adminApiKey, maxRetries: 0, timeout: 10 * 60_000 });
  const question = (i: number) => HELD_OUT_QUESTIONS[i % HELD_OUT_QUESTIONS.length]!;
  try {
    const coldStarted = performance.now();
    await timedStream(client, question(0));
    const coldMs = performance.now() - coldStarted;
    // Warm: the model is loaded and the relay's paths are hot.
    for (let i = 0; i < 3; i++) await timedStream(client, question(i));

    const single: StreamTiming[] = [];
    const singleStarted = performance.now();
    for (let i = 0; i < ROUNDS * 2; i++) single.push(await timedStream(client, question(i)));
    const singleSummary = summarise(single, performance.now() - singleStarted);

    const concurrent: StreamTiming[] = [];
    const concurrentStarted = performance.now();
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      concurrent.push(...(await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => timedStream(client, question(round_ * CONCURRENCY + i))))));
    }
    const concurrentSummary = summarise(concurrent, performance.now() - concurrentStarted);

    return {
      model: TOY_MODEL,
      max_tokens: MAX_TOKENS,
      cold_first_reply_ms: round(coldMs),
      one_stream: singleSummary,
      concurrent_8_streams: concurrentSummary,
      ratios: {
        aggregate_tokens_per_s_8_vs_1: round(concurrentSummary.tokens_per_s_aggregate / singleSummary.tokens_per_s_aggregate, 2),
        ttft_p50_8_vs_1: round(concurrentSummary.ttft_p50_ms / singleSummary.ttft_p50_ms, 2),
      },
    };
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  recordResults('chat', { chat_sampler_embedded: await benchChat() });
}

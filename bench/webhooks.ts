/**
 * `npm run bench:webhooks`: outbound webhooks on the embedded runtime — SQLite file, the in-process
 * job and delivery queues, the real HTTP transport — with a stand-in compute (the tests'
 * `TestEngineCompute`) whose jobs finish at once, so the event path, not the engine, is timed. The
 * API is served over HTTP on 127.0.0.1 as `npm start` serves it; a receiver on 127.0.0.1 verifies
 * every delivery with the `standardwebhooks` library. Results go to bench/results/webhooks.json.
 *
 * 1. Completion to verified event: from the compute event that completes a stim job to the verified
 *    arrival of its `stim.completed`. Baseline: the same jobs with the webhook disabled, from the
 *    same compute event to the API first reading the job `complete`.
 * 2. Delivery load: webhooks whose endpoint answers after 200 ms, subscribed to every event, while
 *    stim jobs run one after another; dispatch latency (POST → job submitted to compute) with that
 *    load and without it. The delivery queue runs `BAKEHOUSE_WEBHOOK_CONCURRENCY` deliveries at once
 *    (default 8), as `npm start` does, so the delivered count measures the throughput that bound allows.
 * Baseline and measured blocks alternate, so the load of this shared machine falls on both alike.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Webhook } from 'standardwebhooks';
import { InProcessDeliveryQueue } from '#adapters/embedded/in-process-delivery-queue.ts';
import { InProcessJobQueue } from '#adapters/embedded/in-process-job-queue.ts';
import { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { resolveWithDns, sendWebhook } from '#adapters/webhook-transport.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import { TOY_MODEL } from '#core/models.ts';
import { createServices } from '#core/services.ts';
import { createApp } from '#http/app.ts';
import { systemClock } from '#ports/clock.ts';
import type { ComputeJob } from '#ports/compute.ts';
import { TestEngineCompute } from '#test/support/test-engine.ts';
import { jsonCaller, quantile, round } from './stats.ts';

const JOBS = Number(process.env.BENCH_WEBHOOK_JOBS ?? 200);
const LOAD_JOBS = Number(process.env.BENCH_WEBHOOK_LOAD_JOBS ?? 200);
/** Jobs per block; baseline and measured blocks alternate. */
const BLOCK = 25;
const SLOW_ANSWER_MS = 200;
/** Slow webhooks, each subscribed to every event: every job event becomes this many 200 ms deliveries. */
const SLOW_WEBHOOKS = 10;
const ADMIN_KEY = 'bh_admin_bench_webhooks_0123456789';
const SIGNING_KEY = 'bench-signing-key-0123456789';

/** When each job reached a moment (submitted, completed, …), and a wait for it. */
class Moments {
  readonly at = new Map<number, number>();
  private readonly waiters = new Map<number, () => void>();
  mark(jobId: number, at = performance.now()): void {
    this.at.set(jobId, at);
    this.waiters.get(jobId)?.();
    this.waiters.delete(jobId);
  }
  when(jobId: number): Promise<number> {
    const at = this.at.get(jobId);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve) => this.waiters.set(jobId, () => resolve(this.at.get(jobId)!)));
  }
}

/** The stand-in compute, noting when each job is handed to it. */
class TimedCompute extends TestEngineCompute {
  readonly handedOver = new Moments();
  override async submit(job: ComputeJob): Promise<string> {
    this.handedOver.mark(job.jobId);
    return super.submit(job);
  }
}

/** A local endpoint that verifies each delivery and notes when it arrived; `/slow/…` answers after 200 ms. */
async function startReceiver() {
  const verifiers = new Map<string, Webhook>();
  const arrivals = { fast: new Moments(), slow: [] as number[] };
  /** Every slow delivery's webhook-id per endpoint, to count the same event delivered twice. */
  const slowIds = new Set<string>();
  let duplicates = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let rejected = 0;
  const server = createServer((request, response) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const path = request.url ?? '';
      let payload: { type: string; data: { job_id?: number } };
      try {
        payload = verifiers.get(path)!.verify(body, request.headers as Record<string, string> & IncomingHttpHeaders) as typeof payload;
      } catch {
        rejected++;
        inFlight--;
        response.writeHead(400).end();
        return;
      }
      const at = performance.now();
      if (path.startsWith('/slow/')) {
        arrivals.slow.push(at);
        const id = `${path} ${String(request.headers['webhook-id'])}`;
        if (slowIds.has(id)) duplicates++;
        slowIds.add(id);
        setTimeout(() => {
          inFlight--;
          response.writeHead(204).end();
        }, SLOW_ANSWER_MS);
        return;
      }
      inFlight--;
      response.writeHead(204).end();
      if (payload.type === 'stim.completed' && payload.data.job_id !== undefined) {
        arrivals.fast.mark(payload.data.job_id, at);
      }
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    verifiers,
    arrivals,
    stats: () => ({ inFlight, maxInFlight, rejected, duplicates }),
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

/**
 * Samples how late a 5 ms timer fires while the job flow runs: how long the event loop, which the
 * job flow shares with delivery, keeps a callback waiting. Returns the function that stops it.
 */
function sampleLoopLag(into: number[]): () => void {
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    into.push(Math.max(0, now - last - 5));
    last = now;
  }, 5);
  return () => clearInterval(timer);
}

function percentiles(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: round(quantile(sorted, 0.5), 2), p95_ms: round(quantile(sorted, 0.95), 2) };
}

export async function benchWebhooks(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-bench-webhooks-'));
  const receiver = await startReceiver();
  const store = new SqliteStore(join(dataDir, 'bakehouse.db'));
  const queue = new InProcessJobQueue();
  const deliveryQueue = new InProcessDeliveryQueue({ concurrency: process.env.BAKEHOUSE_WEBHOOK_CONCURRENCY ? Number(process.env.BAKEHOUSE_WEBHOOK_CONCURRENCY) : undefined });
  let fetchApp: (request: Request) => Response | Promise<Response> = () => new Response('starting', { status: 503 });
  const server = await new Promise<ReturnType<typeof serve>>((ready) => {
    const started = serve({ fetch: (request) => fetchApp(request), port: 0, hostname: '127.0.0.1' }, () => ready(started));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const blobs = new LocalBlobs({ root: join(dataDir, 'blobs'), baseUrl: url, signingKey: SIGNING_KEY });
  const compute = new TimedCompute(blobs);
  const services = createServices({
    store,
    blobs,
    queue,
    compute,
    clock: systemClock,
    catalog: { baseModels: [TOY_MODEL], defaultBaseModel: TOY_MODEL },
    webhookDelivery: { queue: deliveryQueue, resolve: resolveWithDns, send: sendWebhook, policy: { allowHttp: true, allowLoopback: true, allowPrivate: false } },
  });
  await services.apiKeys.ensure(ADMIN_KEY, ADMIN_USER, true);
  fetchApp = createApp(services, { blobs: { blobs, signingKey: SIGNING_KEY } }).fetch;
  queue.consume(({ jobId }) => services.pipeline.dispatch(jobId));
  deliveryQueue.consume((message) => services.webhooks.handleDelivery(message));

  // The compute event that completes a job is the start of every completion measurement.
  // Applied: the job flow has finished with that event (its job event published or left in the outbox).
  const completed = new Moments();
  const applied = new Moments();
  compute.onEvent = async (event) => {
    if (event.state === 'succeeded') completed.mark(event.jobId);
    await services.pipeline.applyEvent(event);
    if (event.state === 'succeeded') applied.mark(event.jobId);
  };

  const call = jsonCaller((path, init) => fetch(`${url}${path}`, init), ADMIN_KEY);
  let targets = 0;
  /** A new target, and its stim started; resolves with the job and when its POST was sent. */
  const startStim = async () => {
    const name = `t${targets++}`;
    await call('POST', '/v1/repo/bench/targets', {
      target_name: name,
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['Why is the sky blue?'] }] },
    });
    const posted = performance.now();
    const job = await call('POST', `/v1/repo/bench/targets/${name}/stim`);
    const jobId = job.job_id as number;
    return { jobId, path: `/v1/repo/bench/targets/${name}/stim`, posted };
  };
  /** Milliseconds from the completing compute event to the API's first `complete`, polled back to back. */
  const apiSeesComplete = async (jobId: number, path: string) => {
    const from = await completed.when(jobId);
    for (;;) {
      const job = await call('GET', path);
      if (job.status === 'complete') return performance.now() - from;
    }
  };
  const setDisabled = async (ids: string[], disabled: boolean) => {
    for (const id of ids) await call('PATCH', `/v1/webhooks/${id}`, { disabled });
  };
  const register = async (path: string, events: string[]) => {
    const webhook = await call('POST', '/v1/webhooks', { url: `${receiver.url}${path}`, events });
    receiver.verifiers.set(path, new Webhook(webhook.secret as string));
    return webhook.id as string;
  };
  /** How the webhooks' deliveries ended, by state, and the errors of those not delivered, as the API lists them. */
  const deliveryStates = async (ids: string[]) => {
    const states: Record<string, number> = {};
    const errors: Record<string, number> = {};
    for (const id of ids) {
      for (let cursor: string | null = null; ; ) {
        const page = await call('GET', `/v1/webhooks/${id}/deliveries?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        for (const delivery of page.data as { state: string; error: string | null }[]) {
          states[delivery.state] = (states[delivery.state] ?? 0) + 1;
          if (delivery.error) errors[delivery.error] = (errors[delivery.error] ?? 0) + 1;
        }
        cursor = page.next_cursor as string | null;
        if (!cursor) break;
      }
    }
    return { states, errors };
  };
  /**
   * Waits until the slow receiver has nothing in flight and no delivery is left to come. Deliveries
   * still waiting for a slot when their webhook is disabled end `failed` (webhook disabled): that
   * Store work is done here too, before a block without load starts.
   */
  const drained = async () => {
    for (let quietSince = performance.now(); ; await new Promise((resolve) => setTimeout(resolve, 20))) {
      if (receiver.stats().inFlight > 0 || deliveryQueue.waiting > 0) quietSince = performance.now();
      else if (performance.now() - quietSince > 2 * SLOW_ANSWER_MS) return;
    }
  };

  const load = { before: loadavg(), after: [] as number[] };
  const wallStarted = performance.now();
  try {
    await call('POST', '/v1/repo', { repo_name: 'bench', base_model: TOY_MODEL });
    await call('POST', '/v1/repo/bench/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
    await call('POST', '/v1/repo/bench/prompts', { prompt_name: 'student', messages: [] });

    // 1. Completion → verified event, against completion → API reads complete.
    const fast = await register('/fast', ['stim.completed']);
    const toEvent: number[] = [];
    const toApi: number[] = [];
    for (let i = 0; i < 4; i++) await receiver.arrivals.fast.when((await startStim()).jobId); // warm-up
    for (let done = 0; done < JOBS; done += BLOCK) {
      await setDisabled([fast], true);
      for (let i = 0; i < BLOCK; i++) {
        const { jobId, path } = await startStim();
        toApi.push(await apiSeesComplete(jobId, path));
        await applied.when(jobId);
      }
      await setDisabled([fast], false);
      for (let i = 0; i < BLOCK; i++) {
        const { jobId } = await startStim();
        toEvent.push((await receiver.arrivals.fast.when(jobId)) - (await completed.when(jobId)));
        await applied.when(jobId);
      }
    }
    await setDisabled([fast], true);
    const event = percentiles(toEvent);
    const api = percentiles(toApi);

    // 2. Dispatch latency with and without a slow receiver's delivery load.
    const slow: string[] = [];
    for (let i = 0; i < SLOW_WEBHOOKS; i++) slow.push(await register(`/slow/${i}`, ['*']));
    const dispatchQuiet: number[] = [];
    const dispatchLoaded: number[] = [];
    let loadedMs = 0;
    let deliveredWhileLoaded = 0;
    // How long the event loop, which the job flow shares with delivery, keeps callbacks waiting.
    const loopLag = { quiet: [] as number[], loaded: [] as number[] };
    const runBlock = async (into: number[], lags: number[]) => {
      const stopSampling = sampleLoopLag(lags);
      for (let i = 0; i < BLOCK; i++) {
        const { jobId, posted } = await startStim();
        into.push((await compute.handedOver.when(jobId)) - posted);
        await applied.when(jobId);
      }
      stopSampling();
    };
    const slowBefore = receiver.arrivals.slow.length;
    for (let done = 0; done < LOAD_JOBS; done += BLOCK) {
      await setDisabled(slow, true);
      await drained();
      await runBlock(dispatchQuiet, loopLag.quiet);
      await setDisabled(slow, false);
      const from = receiver.arrivals.slow.length;
      const started = performance.now();
      await runBlock(dispatchLoaded, loopLag.loaded);
      loadedMs += performance.now() - started;
      deliveredWhileLoaded += receiver.arrivals.slow.length - from;
    }
    await drained();
    const delivered = receiver.arrivals.slow.length - slowBefore;
    // stim.started and stim.completed per job, each to every slow webhook.
    const expected = LOAD_JOBS * 2 * SLOW_WEBHOOKS;
    const quiet = percentiles(dispatchQuiet);
    const loaded = percentiles(dispatchLoaded);
    load.after = loadavg();

    return {
      load_average_1m: { before: round(load.before[0]!, 2), after: round(load.after[0]!, 2) },
      wall_s: round((performance.now() - wallStarted) / 1000, 1),
      completion_to_verified_event: {
        jobs: JOBS,
        baseline_completion_to_api_complete: api,
        completion_to_verified_stim_completed: event,
        added_p50_ms: round(event.p50_ms - api.p50_ms, 2),
        added_p95_ms: round(event.p95_ms - api.p95_ms, 2),
        ratio_p50: round(event.p50_ms / api.p50_ms, 2),
        ratio_p95: round(event.p95_ms / api.p95_ms, 2),
      },
      delivery_load: {
        jobs_per_side: LOAD_JOBS,
        slow_webhooks: SLOW_WEBHOOKS,
        slow_answer_ms: SLOW_ANSWER_MS,
        delivery_concurrency: deliveryQueue.concurrency,
        deliveries_expected: expected,
        deliveries_verified: delivered,
        deliveries_by_state: await deliveryStates(slow),
        loaded_blocks_s: round(loadedMs / 1000, 1),
        deliveries_per_s_while_jobs_ran: round(deliveredWhileLoaded / (loadedMs / 1000), 1),
        receiver_max_concurrent: receiver.stats().maxInFlight,
        receiver_rejected_signatures: receiver.stats().rejected,
        receiver_duplicate_deliveries: receiver.stats().duplicates,
        dispatch_without_load: quiet,
        dispatch_under_load: loaded,
        dispatch_ratio_p50: round(loaded.p50_ms / quiet.p50_ms, 2),
        dispatch_ratio_p95: round(loaded.p95_ms / quiet.p95_ms, 2),
        event_loop_lag_without_load: percentiles(loopLag.quiet),
        event_loop_lag_under_load: percentiles(loopLag.loaded),
      },
    };
  } finally {
    await deliveryQueue.close();
    await queue.close();
    await compute.idle();
    await new Promise<void>((done) => server.close(() => done()));
    await receiver.close();
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  const results = {
    recorded_at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    webhooks_embedded: await benchWebhooks(),
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/webhooks.json', `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

/**
 * Job ports for tests: blobs in a temp dir, the in-process queue, and `TestEngineCompute`, a
 * stand-in for the engine (tests only) that writes outputs the way the engine contract says and
 * reports state changes, so the job pipeline can be driven quickly and deterministically.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessJobQueue } from '#adapters/embedded/in-process-job-queue.ts';
import { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import type { Blobs } from '#ports/blobs.ts';
import type { Compute, ComputeEvent, ComputeFailure, ComputeJob, ComputeStatus } from '#ports/compute.ts';
import type { JobSpec } from '#schemas/job-spec.ts';

/** What the stand-in does for a job: write these lines and finish so. */
export interface Scripted {
  lines?: Record<string, unknown>[];
  metrics?: Record<string, unknown>[];
  checkpoints?: number[];
  fail?: string;
  /** Die without result.json, as the platform reports it (e.g. a signal, with its stderr tail as `reason`). */
  crash?: { failure: ComputeFailure; reason?: string; percent?: number };
  /** Leave the job running until `finish` is called. */
  hold?: boolean;
}

export class TestEngineCompute implements Compute {
  readonly submitted: ComputeJob[] = [];
  readonly terminated: string[] = [];
  private readonly states = new Map<string, ComputeStatus>();
  private readonly held = new Map<number, { job: ComputeJob; script: Scripted }>();
  /** Runs under way, so a test's clean-up can wait for them before closing the store. */
  private readonly running = new Set<Promise<void>>();
  onEvent: (event: ComputeEvent) => Promise<unknown> = async () => {};
  /** Decides each job's outcome; by default stim/rollout write two lines, a bake one checkpoint, and a sampler is held. */
  script: (spec: JobSpec) => Scripted = defaultScript;

  constructor(private readonly blobs: Blobs) {}

  async submit(job: ComputeJob): Promise<string> {
    const externalId = `test-${job.jobId}`;
    this.submitted.push(job);
    this.states.set(externalId, { state: 'pending' });
    const script = this.script(job.spec);
    // Run after submit returns, as a real platform would.
    setImmediate(() => {
      const run = this.run(job, externalId, script).finally(() => this.running.delete(run));
      this.running.add(run);
    });
    return externalId;
  }

  /** Resolves once no run is under way (held jobs wait for `finish` and do not count). */
  async idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  async describe(externalId: string): Promise<ComputeStatus> {
    return this.states.get(externalId) ?? { state: 'gone', reason: 'unknown job' };
  }

  async terminate(externalId: string, reason: string): Promise<void> {
    this.terminated.push(externalId);
    this.states.set(externalId, { state: 'failed', reason });
  }

  /** Completes a job started with `hold`. */
  async finish(jobId: number): Promise<void> {
    const held = this.held.get(jobId);
    if (!held) throw new Error(`job ${jobId} is not held`);
    this.held.delete(jobId);
    await this.complete(held.job, `test-${jobId}`, { ...held.script, hold: false });
  }

  private async run(job: ComputeJob, externalId: string, script: Scripted): Promise<void> {
    this.states.set(externalId, { state: 'running' });
    await this.onEvent({ externalId, jobId: job.jobId, state: 'running' });
    const prefix = `jobs/${job.jobId}/`;
    await writeLines(this.blobs, prefix, script.lines ?? []);
    if (script.metrics) await this.blobs.put(`${prefix}metrics.jsonl`, script.metrics.map((row) => JSON.stringify(row)).join('\n') + '\n');
    await this.blobs.put(`${prefix}progress.json`, JSON.stringify({ percent: 50, lines: script.lines?.length ?? 0, updated_at: new Date().toISOString() }));
    if (script.hold) {
      this.held.set(job.jobId, { job, script });
      return;
    }
    await this.complete(job, externalId, script);
  }

  private async complete(job: ComputeJob, externalId: string, script: Scripted): Promise<void> {
    const prefix = `jobs/${job.jobId}/`;
    for (const step of script.checkpoints ?? []) {
      await this.blobs.put(`${prefix}ckpts/${step}/adapter_config.json`, '{}');
      await this.blobs.put(`${prefix}ckpts/${step}.tar.gz`, `archive of step ${step}`);
    }
    if (script.crash) {
      const { failure, reason, percent = 50 } = script.crash;
      await this.blobs.put(`${prefix}progress.json`, JSON.stringify({ percent, lines: 0, updated_at: new Date().toISOString() }));
      this.states.set(externalId, { state: 'failed', failure, ...(reason ? { reason } : {}) });
      await this.onEvent({ externalId, jobId: job.jobId, state: 'failed', failure, ...(reason ? { reason } : {}) });
      return;
    }
    const losses = (script.metrics ?? []).map((row) => row.loss as number);
    const result = script.fail
      ? { status: 'failed', error: script.fail }
      : {
          status: 'complete',
          error: null,
          lines: script.lines?.length ?? 0,
          ...(script.checkpoints ? { checkpoints: script.checkpoints } : {}),
          ...(losses.length ? { loss: { latest_loss: losses.at(-1), final_loss: losses.at(-1), min_loss: Math.min(...losses), max_loss: Math.max(...losses) } } : {}),
        };
    await this.blobs.put(`${prefix}result.json`, JSON.stringify(result));
    const state = script.fail ? 'failed' : 'succeeded';
    this.states.set(externalId, { state });
    await this.onEvent({ externalId, jobId: job.jobId, state, ...(script.fail ? { reason: 'exit code 1' } : {}) });
  }
}

/** Writes output.jsonl and its index the way the engine does. */
export async function writeLines(blobs: Blobs, prefix: string, lines: Record<string, unknown>[]): Promise<void> {
  const encoder = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const index = new DataView(new ArrayBuffer(lines.length * 8));
  let offset = 0;
  lines.forEach((line, i) => {
    index.setBigUint64(i * 8, BigInt(offset), true);
    const bytes = encoder.encode(`${JSON.stringify(line)}\n`);
    chunks.push(bytes);
    offset += bytes.byteLength;
  });
  await blobs.put(`${prefix}output.jsonl`, Buffer.concat(chunks));
  await blobs.put(`${prefix}output.idx`, new Uint8Array(index.buffer));
}

function defaultScript(spec: JobSpec): Scripted {
  // Samplers and trainers serve until told otherwise; tests answer them through the relay (fake-sampler.ts, fake-trainer.ts).
  if (spec.kind === 'sampler' || spec.kind === 'trainer') return { hold: true };
  if (spec.kind === 'bake') return { metrics: [{ iter: 1, loss: 2 }, { iter: 2, loss: 1 }], checkpoints: [2] };
  return { lines: [0, 1].map((id) => ({ stimulus_id: id })) };
}

/** What the test blobs sign their URLs with (the blob route must be given the same). */
export const TEST_SIGNING_KEY = 'test-signing-key-0123456789';

export interface TestJobPorts {
  blobs: LocalBlobs;
  queue: InProcessJobQueue;
  compute: TestEngineCompute;
  close(): Promise<void>;
}

export function createTestJobPorts(): TestJobPorts {
  const root = mkdtempSync(join(tmpdir(), 'bakehouse-blobs-'));
  const blobs = new LocalBlobs({ root, baseUrl: 'http://127.0.0.1:9', signingKey: TEST_SIGNING_KEY });
  const queue = new InProcessJobQueue({ retryDelayMs: () => 5 });
  const compute = new TestEngineCompute(blobs);
  return {
    blobs,
    queue,
    compute,
    close: async () => {
      await queue.close();
      await compute.idle();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

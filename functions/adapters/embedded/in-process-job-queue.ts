/**
 * InProcessJobQueue: the JobQueue port inside the embedded server, standing in for SQS + its
 * Lambda event source. Delivery is asynchronous and at-least-once: a handler that throws gets the
 * message again after a growing delay, up to `maxAttempts`; then the message is dead-lettered
 * (logged, and handed to `onDeadLetter`), as SQS moves it to the DLQ after `maxReceiveCount`.
 *
 * Messages live in memory: a restart loses those not yet handled. That is safe because the Store
 * holds every job and the start-up reconciler re-queues jobs left `queued` (DESIGN.md §1, step 6).
 */
import type { JobMessage, JobQueue } from '#ports/job-queue.ts';
import { assertJobMessage, checkedDelaySeconds } from '../job-message.ts';

export interface Delivery {
  /** 1 on the first delivery, 2 on the first redelivery, … */
  attempt: number;
}

export type JobMessageHandler = (message: JobMessage, delivery: Delivery) => Promise<void>;

export interface InProcessJobQueueOptions {
  /** Deliveries before a message is dead-lettered; default 5. */
  maxAttempts?: number;
  /** Wait before the next delivery after `attempt` failed; default 1 s doubling to at most 60 s. */
  retryDelayMs?: (attempt: number) => number;
  /** Handlers running at once; default 4. */
  concurrency?: number;
  /** Called with each dead-lettered message (after it is logged). */
  onDeadLetter?: (message: JobMessage, error: unknown, attempts: number) => void;
  /** Structured log lines; default one JSON line on stderr. */
  log?: (entry: Record<string, unknown>) => void;
}

interface Entry {
  message: JobMessage;
  attempts: number;
}

export function defaultRetryDelayMs(attempt: number): number {
  return Math.min(1_000 * 2 ** (attempt - 1), 60_000);
}

const jsonLog = (entry: Record<string, unknown>) => console.error(JSON.stringify(entry));

export class InProcessJobQueue implements JobQueue {
  private readonly maxAttempts: number;
  private readonly retryDelayMs: (attempt: number) => number;
  private readonly concurrency: number;
  private readonly onDeadLetter?: (message: JobMessage, error: unknown, attempts: number) => void;
  private readonly log: (entry: Record<string, unknown>) => void;

  private handler?: JobMessageHandler;
  /** Due now, waiting for a consumer or a free slot. */
  private ready: Entry[] = [];
  /** Waiting out a delay or a retry backoff. */
  private readonly timers = new Map<NodeJS.Timeout | NodeJS.Immediate, Entry>();
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(options: InProcessJobQueueOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.retryDelayMs = options.retryDelayMs ?? defaultRetryDelayMs;
    this.concurrency = options.concurrency ?? 4;
    this.onDeadLetter = options.onDeadLetter;
    this.log = options.log ?? jsonLog;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new RangeError('maxAttempts must be a positive integer');
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError('concurrency must be a positive integer');
  }

  async send(message: JobMessage, options: { delaySeconds?: number } = {}): Promise<void> {
    assertJobMessage(message);
    const delaySeconds = checkedDelaySeconds(options.delaySeconds);
    if (this.closed) throw new Error('The job queue is closed');
    this.schedule({ message: { jobId: message.jobId }, attempts: 0 }, delaySeconds * 1000);
  }

  /** Starts delivering to `handler` (one consumer per queue), including messages sent before. */
  consume(handler: JobMessageHandler): void {
    if (this.handler) throw new Error('This job queue already has a consumer');
    if (this.closed) throw new Error('The job queue is closed');
    this.handler = handler;
    this.pump();
  }

  /** Resolves once nothing is waiting, delayed, backing off or being handled. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    if (!this.handler && !this.closed) {
      return Promise.reject(new Error('drain() would never finish: messages are waiting and nothing consumes them'));
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops delivering and drops what has not been delivered; waits for running handlers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.keys()) {
      clearTimeout(timer as NodeJS.Timeout);
      clearImmediate(timer as NodeJS.Immediate);
    }
    this.timers.clear();
    this.ready = [];
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    else this.settleIdle();
  }

  private schedule(entry: Entry, delayMs: number): void {
    // Even an immediate delivery waits for the sender's turn to end: delivery is asynchronous.
    const due = () => {
      this.timers.delete(timer);
      if (this.closed) return this.settleIdle();
      this.ready.push(entry);
      this.pump();
    };
    const timer: NodeJS.Timeout | NodeJS.Immediate = delayMs > 0 ? setTimeout(due, delayMs).unref() : setImmediate(due);
    this.timers.set(timer, entry);
  }

  private pump(): void {
    while (this.handler && !this.closed && this.inFlight < this.concurrency && this.ready.length > 0) {
      void this.deliver(this.handler, this.ready.shift()!);
    }
    this.settleIdle();
  }

  private async deliver(handler: JobMessageHandler, entry: Entry): Promise<void> {
    this.inFlight++;
    entry.attempts++;
    try {
      await handler({ ...entry.message }, { attempt: entry.attempts });
    } catch (error) {
      if (entry.attempts >= this.maxAttempts) this.deadLetter(entry, error);
      else if (!this.closed) this.schedule(entry, this.retryDelayMs(entry.attempts));
    } finally {
      this.inFlight--;
      this.pump();
    }
  }

  private deadLetter(entry: Entry, error: unknown): void {
    this.log({
      level: 'error',
      msg: 'job message dead-lettered',
      jobId: entry.message.jobId,
      attempts: entry.attempts,
      error: error instanceof Error ? error.message : String(error),
    });
    try {
      this.onDeadLetter?.({ ...entry.message }, error, entry.attempts);
    } catch (hookError) {
      this.log({ level: 'error', msg: 'onDeadLetter threw', jobId: entry.message.jobId, error: String(hookError) });
    }
  }

  private isIdle(): boolean {
    return this.inFlight === 0 && this.ready.length === 0 && this.timers.size === 0;
  }

  private settleIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/**
 * The webhook delivery queue inside the embedded server: a message is handed to the consumer
 * after its delay, on a timer. Messages live in memory; a restart loses them, and the reconcile
 * sweep re-queues what the Store still holds as due (functions/core/webhooks/deliveries.ts).
 * A consumer that throws (the Store failing) leaves the delivery to that sweep as well.
 *
 * Deliveries share the process with the API and the job flow, so at most `concurrency` run at
 * once and each starts on its own event-loop turn (setImmediate): a slow endpoint holding every
 * slot only makes other deliveries wait here, in memory, where they are neither claimed nor
 * attempted (nothing is lost: the Store holds them). The slots work like the job queue's
 * (in-process-job-queue.ts), without its retries: the Store schedules a delivery's retries.
 */
import type { DeliveryMessage, DeliveryQueue } from '#core/webhooks/ports.ts';

export type DeliveryHandler = (message: DeliveryMessage) => Promise<void>;

/** Deliveries running at once when nothing is configured (`BAKEHOUSE_WEBHOOK_CONCURRENCY`). */
export const DEFAULT_DELIVERY_CONCURRENCY = 8;

export class InProcessDeliveryQueue implements DeliveryQueue {
  readonly concurrency: number;
  private handler?: DeliveryHandler;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Due, waiting for a slot, in the order they became due; keyed by delivery and attempt. */
  private readonly ready = new Map<string, DeliveryMessage>();
  private readonly running = new Set<Promise<void>>();
  private starting = false;
  private closed = false;

  constructor(options: { concurrency?: number } = {}) {
    this.concurrency = options.concurrency ?? DEFAULT_DELIVERY_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError('concurrency must be a positive integer');
  }

  async send(message: DeliveryMessage, options: { delaySeconds?: number } = {}): Promise<void> {
    if (this.closed) throw new Error('The webhook delivery queue is closed');
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.enqueue({ deliveryId: message.deliveryId, attempt: message.attempt });
    }, (options.delaySeconds ?? 0) * 1000).unref();
    this.timers.add(timer);
  }

  consume(handler: DeliveryHandler): void {
    this.handler = handler;
    this.pump();
  }

  /** Deliveries due but waiting for a slot. */
  get waiting(): number {
    return this.ready.size;
  }

  /** Drops what has not been handed over and waits for the handlers running. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.ready.clear();
    await Promise.allSettled([...this.running]);
  }

  private enqueue(message: DeliveryMessage): void {
    if (this.closed) return;
    // The sweep re-queues every due delivery not yet claimed, which includes those waiting here;
    // one copy is enough (the handler would drop the others after claiming the first).
    this.ready.set(`${message.deliveryId}#${message.attempt}`, message);
    this.pump();
  }

  /** Starts the next waiting delivery on a later turn, so requests and job dispatch run between deliveries. */
  private pump(): void {
    if (this.starting || this.closed || !this.handler || this.ready.size === 0 || this.running.size >= this.concurrency) return;
    this.starting = true;
    setImmediate(() => {
      this.starting = false;
      if (this.closed || !this.handler || this.running.size >= this.concurrency) return;
      const next = this.ready.entries().next();
      if (next.done) return;
      const [key, message] = next.value;
      this.ready.delete(key);
      this.deliver(this.handler, message);
      this.pump();
    });
  }

  private deliver(handler: DeliveryHandler, message: DeliveryMessage): void {
    const run: Promise<void> = handler(message)
      .catch((error: unknown) => console.error(JSON.stringify({ level: 'error', msg: 'webhook delivery failed', deliveryId: message.deliveryId, error: String(error) })))
      .finally(() => {
        this.running.delete(run);
        this.pump();
      });
    this.running.add(run);
  }
}

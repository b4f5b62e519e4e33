/**
 * The webhook delivery queue inside the embedded server: a message is handed to the consumer
 * after its delay, on a timer. Messages live in memory; a restart loses them, and the reconcile
 * sweep re-queues what the Store still holds as due (functions/core/webhooks/deliveries.ts).
 * A consumer that throws (the Store failing) leaves the delivery to that sweep as well.
 */
import type { DeliveryMessage, DeliveryQueue } from '#core/webhooks/ports.ts';

export type DeliveryHandler = (message: DeliveryMessage) => Promise<void>;

export class InProcessDeliveryQueue implements DeliveryQueue {
  private handler?: DeliveryHandler;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private closed = false;

  async send(message: DeliveryMessage, options: { delaySeconds?: number } = {}): Promise<void> {
    if (this.closed) throw new Error('The webhook delivery queue is closed');
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.deliver({ deliveryId: message.deliveryId, attempt: message.attempt });
    }, (options.delaySeconds ?? 0) * 1000).unref();
    this.timers.add(timer);
  }

  consume(handler: DeliveryHandler): void {
    this.handler = handler;
  }

  /** Drops what has not been handed over and waits for the handlers running. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }

  private deliver(message: DeliveryMessage): void {
    if (this.closed || !this.handler) return;
    const run = this.handler(message)
      .catch((error: unknown) => console.error(JSON.stringify({ level: 'error', msg: 'webhook delivery failed', deliveryId: message.deliveryId, error: String(error) })))
      .finally(() => this.running.delete(run));
    this.running.add(run);
  }
}

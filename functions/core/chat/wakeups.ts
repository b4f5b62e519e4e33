/**
 * Shortens the relay's polls. A poll loop waits on a topic for at most its poll interval; a change
 * made by this same process (a request queued, a chunk posted) wakes it at once. Changes made by
 * another process — another Lambda instance — are still seen at the next poll, so this is only
 * ever a shortcut, never what correctness rests on.
 */
export class Wakeups {
  private readonly waiters = new Map<string, Set<() => void>>();

  notify(topic: string): void {
    for (const wake of this.waiters.get(topic) ?? []) wake();
  }

  /** Resolves after `ms`, on `notify(topic)`, or when the signal aborts, whichever comes first. */
  wait(topic: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.waiters.get(topic) ?? new Set<() => void>();
      this.waiters.set(topic, waiters);
      const wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        waiters.delete(wake);
        if (waiters.size === 0) this.waiters.delete(topic);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal?.addEventListener('abort', wake, { once: true });
      waiters.add(wake);
    });
  }
}

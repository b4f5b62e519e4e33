import { describe, expect, it } from 'vitest';
import { Wakeups } from './wakeups.ts';

/** Which of the promises have settled after the pending callbacks ran. */
async function settled(promises: Promise<void>[]): Promise<boolean[]> {
  const done = promises.map(() => false);
  promises.forEach((promise, index) => void promise.then(() => (done[index] = true)));
  await new Promise((resolve) => setTimeout(resolve, 10));
  return done;
}

describe('Wakeups', () => {
  it('wakes the waiters of a topic on notify, and only them', async () => {
    const wakeups = new Wakeups();
    const a = [wakeups.wait('a', 60_000), wakeups.wait('a', 60_000)];
    const b = wakeups.wait('b', 60_000);
    wakeups.notify('a');
    expect(await settled([...a, b])).toEqual([true, true, false]);
    wakeups.notify('b');
    expect(await settled([b])).toEqual([true]);
  });

  it('gives up after the interval, and at once when the signal aborts', async () => {
    const wakeups = new Wakeups();
    await wakeups.wait('a', 5);
    const abort = new AbortController();
    const waiting = wakeups.wait('a', 60_000, abort.signal);
    abort.abort();
    expect(await settled([waiting])).toEqual([true]);
    expect(await settled([wakeups.wait('a', 60_000, abort.signal)])).toEqual([true]);
  });

  it('forgets a waiter once it is woken, so a later notify finds none', async () => {
    const wakeups = new Wakeups();
    await wakeups.wait('a', 1);
    expect(wakeups['waiters'].size).toBe(0);
  });
});

/**
 * The JobQueue contract: what every adapter must do, run against each of them
 * (job-queue.test.ts). Consumption belongs to the platform, so each fixture brings its own way of
 * receiving: ReceiveMessage for SQS, `consume` for the in-process queue.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobMessage, JobQueue } from '#ports/job-queue.ts';

export interface JobQueueFixture {
  queue: JobQueue;
  /** Messages delivered within `waitMs`, returning early once `count` have arrived. */
  receive(options: { waitMs: number; count?: number }): Promise<JobMessage[]>;
  close(): Promise<void>;
}

const ids = (messages: JobMessage[]) => messages.map((message) => message.jobId).sort((a, b) => a - b);

export function describeJobQueueContract(name: string, makeFixture: () => Promise<JobQueueFixture>): void {
  describe(`JobQueue contract: ${name}`, () => {
    let fixture: JobQueueFixture;
    let queue: JobQueue;
    beforeEach(async () => {
      fixture = await makeFixture();
      queue = fixture.queue;
    });
    afterEach(async () => {
      await fixture?.close();
    });

    it('delivers a message holding only the job id', async () => {
      await queue.send({ jobId: 42 });
      const received = await fixture.receive({ waitMs: 5_000, count: 1 });
      expect(received).toEqual([{ jobId: 42 }]);
    });

    it('delivers only the job id even when the message carries more', async () => {
      await queue.send({ jobId: 7, extra: 'dropped' } as JobMessage);
      expect(await fixture.receive({ waitMs: 5_000, count: 1 })).toEqual([{ jobId: 7 }]);
    });

    it('delivers every message of a burst', async () => {
      const sent = Array.from({ length: 25 }, (_, i) => i + 1);
      await Promise.all(sent.map((jobId) => queue.send({ jobId })));
      const received = await fixture.receive({ waitMs: 10_000, count: sent.length });
      expect(new Set(ids(received))).toEqual(new Set(sent));
    });

    it('holds a delayed message back until its delay has passed', async () => {
      await queue.send({ jobId: 5 }, { delaySeconds: 1 });
      await queue.send({ jobId: 6 });
      expect(await fixture.receive({ waitMs: 400, count: 2 })).toEqual([{ jobId: 6 }]);
      expect(await fixture.receive({ waitMs: 5_000, count: 1 })).toEqual([{ jobId: 5 }]);
    });

    it.each([[0], [-3], [1.5], [Number.NaN], ['12'], [undefined]])('refuses the job id %s', async (jobId) => {
      await expect(queue.send({ jobId } as unknown as JobMessage)).rejects.toThrow(TypeError);
      expect(await fixture.receive({ waitMs: 200 })).toEqual([]);
    });

    it.each([[-1], [901], [2.5]])('refuses a delay of %s seconds', async (delaySeconds) => {
      await expect(queue.send({ jobId: 1 }, { delaySeconds })).rejects.toThrow(RangeError);
    });

    it('accepts the delay bounds 0 and 900 seconds', async () => {
      await queue.send({ jobId: 1 }, { delaySeconds: 0 });
      await queue.send({ jobId: 2 }, { delaySeconds: 900 });
      expect(await fixture.receive({ waitMs: 5_000, count: 1 })).toEqual([{ jobId: 1 }]);
    });
  });
}

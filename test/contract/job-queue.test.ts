import { randomUUID } from 'node:crypto';
import { CreateQueueCommand, DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJobMessageBody, SqsJobQueue } from '#adapters/aws/sqs-job-queue.ts';
import { defaultRetryDelayMs, InProcessJobQueue, type Delivery } from '#adapters/embedded/in-process-job-queue.ts';
import type { JobMessage } from '#ports/job-queue.ts';
import { startFauxqsForTests, type FauxqsForTests } from '#test/support/fauxqs.ts';
import { describeJobQueueContract, type JobQueueFixture } from './job-queue.contract.ts';

let fauxqs: FauxqsForTests;
let sqs: SQSClient;
beforeAll(async () => {
  fauxqs = await startFauxqsForTests();
  sqs = fauxqs.sqs();
});
afterAll(() => fauxqs?.stop());

async function createQueue(attributes: Record<string, string> = {}, suffix = ''): Promise<string> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `jobs-${randomUUID()}${suffix}`, Attributes: attributes }));
  return QueueUrl!;
}

/** Receives (and deletes) raw SQS messages until `count` arrive or `waitMs` passes. */
async function receiveRaw(queueUrl: string, waitMs: number, count = Infinity) {
  const received: { Body?: string; Attributes?: Record<string, string> }[] = [];
  const deadline = Date.now() + waitMs;
  while (received.length < count && Date.now() < deadline) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: Math.min(1, Math.max(0, Math.floor((deadline - Date.now()) / 1000))),
        MessageSystemAttributeNames: ['All'],
      }),
    );
    for (const message of Messages) {
      received.push(message as (typeof received)[number]);
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }));
    }
    if (Messages.length === 0 && deadline - Date.now() < 1000) await new Promise((done) => setTimeout(done, 50));
  }
  return received;
}

describeJobQueueContract('SqsJobQueue (fauxqs SQS)', async () => {
  const queueUrl = await createQueue();
  return {
    queue: new SqsJobQueue({ client: sqs, queueUrl }),
    receive: async ({ waitMs, count }) => (await receiveRaw(queueUrl, waitMs, count)).map((message) => parseJobMessageBody(message.Body!)),
    close: async () => {},
  };
});

describeJobQueueContract('InProcessJobQueue', async () => inProcessFixture(new InProcessJobQueue()));

function inProcessFixture(queue: InProcessJobQueue): JobQueueFixture {
  const inbox: JobMessage[] = [];
  let notify = () => {};
  queue.consume(async (message) => {
    inbox.push(message);
    notify();
  });
  return {
    queue,
    receive: async ({ waitMs, count = Infinity }) => {
      const deadline = Date.now() + waitMs;
      while (inbox.length < count && Date.now() < deadline) {
        await new Promise<void>((done) => {
          const timer = setTimeout(done, deadline - Date.now());
          notify = () => {
            clearTimeout(timer);
            done();
          };
        });
      }
      return inbox.splice(0, count);
    },
    close: () => queue.close(),
  };
}

describe('SqsJobQueue', () => {
  it('sends the body {"jobId":n} and a DelaySeconds', async () => {
    const queueUrl = await createQueue();
    const queue = new SqsJobQueue({ client: sqs, queueUrl });
    expect(queue.fifo).toBe(false);
    await queue.send({ jobId: 12 });
    const [message] = await receiveRaw(queueUrl, 5_000, 1);
    expect(message?.Body).toBe('{"jobId":12}');
  });

  it('groups FIFO messages by job id and deduplicates per send', async () => {
    const queueUrl = await createQueue({ FifoQueue: 'true' }, '.fifo');
    const queue = new SqsJobQueue({ client: sqs, queueUrl });
    expect(queue.fifo).toBe(true);
    await queue.send({ jobId: 7 });
    await queue.send({ jobId: 7 }); // a deliberate re-queue is not deduplicated away
    await queue.send({ jobId: 8 });
    const received = await receiveRaw(queueUrl, 5_000, 3);
    // Order holds within a group only; a group's next message waits until its last is deleted.
    const pairs = received.map((message) => [message.Body, message.Attributes?.MessageGroupId]).sort();
    expect(pairs).toEqual([
      ['{"jobId":7}', '7'],
      ['{"jobId":7}', '7'],
      ['{"jobId":8}', '8'],
    ]);
    const dedupIds = received.map((message) => message.Attributes?.MessageDeduplicationId);
    expect(new Set(dedupIds).size).toBe(3);
  });

  it('refuses a per-message delay on a FIFO queue', async () => {
    const queue = new SqsJobQueue({ client: sqs, queueUrl: await createQueue({ FifoQueue: 'true' }, '.fifo') });
    await expect(queue.send({ jobId: 1 }, { delaySeconds: 5 })).rejects.toThrow(/FIFO queues have no per-message delay/);
  });

  it('surfaces SQS errors (an unknown queue)', async () => {
    const queue = new SqsJobQueue({ client: sqs, queueUrl: `${fauxqs.endpoint}/000000000000/no-such-queue` });
    await expect(queue.send({ jobId: 1 })).rejects.toThrow(/queue/i);
  });

  it.each([['{"jobId":3}', { jobId: 3 }], ['{"jobId":3,"x":1}', { jobId: 3 }]])('parses the body %s', (body, expected) => {
    expect(parseJobMessageBody(body)).toEqual(expected);
  });

  it.each(['not json', '{}', '{"jobId":"3"}', '{"jobId":0}', 'null', '[]'])('refuses the body %s', (body) => {
    expect(() => parseJobMessageBody(body)).toThrow(TypeError);
  });
});

describe('InProcessJobQueue', () => {
  const quiet = () => {};

  it('delivers asynchronously: send returns before the handler runs', async () => {
    const queue = new InProcessJobQueue();
    const seen: number[] = [];
    queue.consume(async ({ jobId }) => {
      seen.push(jobId);
    });
    await queue.send({ jobId: 1 });
    expect(seen).toEqual([]);
    await queue.drain();
    expect(seen).toEqual([1]);
    await queue.close();
  });

  it('keeps messages sent before a consumer exists, and delivers them once one does', async () => {
    const queue = new InProcessJobQueue();
    await queue.send({ jobId: 1 });
    await queue.send({ jobId: 2 });
    await new Promise((done) => setTimeout(done, 20));
    await expect(queue.drain()).rejects.toThrow(/nothing consumes them/);
    const seen: number[] = [];
    queue.consume(async ({ jobId }) => {
      seen.push(jobId);
    });
    await queue.drain();
    expect(seen).toEqual([1, 2]);
    await queue.close();
  });

  it('redelivers a message whose handler throws, with the attempt number', async () => {
    const delays: number[] = [];
    const queue = new InProcessJobQueue({ retryDelayMs: (attempt) => (delays.push(attempt), 5), log: quiet });
    const deliveries: Delivery[] = [];
    queue.consume(async (message, delivery) => {
      deliveries.push(delivery);
      if (delivery.attempt < 3) throw new Error(`transient ${message.jobId}`);
    });
    await queue.send({ jobId: 9 });
    await queue.drain();
    expect(deliveries.map((delivery) => delivery.attempt)).toEqual([1, 2, 3]);
    expect(delays).toEqual([1, 2]);
    await queue.close();
  });

  it('dead-letters a message after maxAttempts, logging it', async () => {
    const logs: Record<string, unknown>[] = [];
    const dead: [JobMessage, unknown, number][] = [];
    const queue = new InProcessJobQueue({
      maxAttempts: 3,
      retryDelayMs: () => 1,
      log: (entry) => logs.push(entry),
      onDeadLetter: (message, error, attempts) => dead.push([message, error, attempts]),
    });
    let calls = 0;
    queue.consume(async () => {
      calls++;
      throw new Error('always broken');
    });
    await queue.send({ jobId: 4 });
    await queue.drain();
    expect(calls).toBe(3);
    expect(dead).toEqual([[{ jobId: 4 }, expect.objectContaining({ message: 'always broken' }), 3]]);
    expect(logs).toEqual([{ level: 'error', msg: 'job message dead-lettered', jobId: 4, attempts: 3, error: 'always broken' }]);
    await queue.close();
  });

  it('defaults to 5 attempts with a doubling backoff capped at a minute', async () => {
    const queue = new InProcessJobQueue({ retryDelayMs: () => 0, log: quiet });
    let calls = 0;
    queue.consume(async () => {
      calls++;
      throw new Error('x');
    });
    await queue.send({ jobId: 1 });
    await queue.drain();
    expect(calls).toBe(5);
    expect([1, 2, 3, 4, 7, 20].map(defaultRetryDelayMs)).toEqual([1_000, 2_000, 4_000, 8_000, 60_000, 60_000]);
    await queue.close();
  });

  it('drain waits for delayed messages, backoffs and running handlers', async () => {
    const queue = new InProcessJobQueue({ retryDelayMs: () => 30, log: quiet });
    const done: number[] = [];
    queue.consume(async ({ jobId }, { attempt }) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (jobId === 2 && attempt === 1) throw new Error('once');
      done.push(jobId);
    });
    await queue.send({ jobId: 1 }, { delaySeconds: 1 });
    await queue.send({ jobId: 2 });
    await queue.send({ jobId: 3 });
    await queue.drain();
    expect(done.sort()).toEqual([1, 2, 3]);
    await queue.close();
  });

  it('runs at most `concurrency` handlers at once', async () => {
    const queue = new InProcessJobQueue({ concurrency: 3 });
    let running = 0;
    let peak = 0;
    queue.consume(async () => {
      peak = Math.max(peak, ++running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
    });
    await Promise.all(Array.from({ length: 20 }, (_, i) => queue.send({ jobId: i + 1 })));
    await queue.drain();
    expect(peak).toBe(3);
    await queue.close();
  });

  it('close waits for running handlers, drops the rest, and refuses new work', async () => {
    const queue = new InProcessJobQueue({ concurrency: 1 });
    const seen: number[] = [];
    let release = () => {};
    queue.consume(async ({ jobId }) => {
      seen.push(jobId);
      await new Promise<void>((resolve) => (release = resolve));
    });
    await queue.send({ jobId: 1 });
    await queue.send({ jobId: 2 });
    await queue.send({ jobId: 3 }, { delaySeconds: 60 });
    await new Promise((done) => setTimeout(done, 20));
    let closed = false;
    const closing = queue.close().then(() => (closed = true));
    await new Promise((done) => setTimeout(done, 20));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(seen).toEqual([1]);
    await expect(queue.send({ jobId: 4 })).rejects.toThrow(/closed/);
    await queue.drain();
  });

  it('allows one consumer', () => {
    const queue = new InProcessJobQueue();
    queue.consume(async () => {});
    expect(() => queue.consume(async () => {})).toThrow(/already has a consumer/);
  });

  it('hands each delivery its own copy of the message', async () => {
    const queue = new InProcessJobQueue({ retryDelayMs: () => 0, log: quiet });
    const seen: number[] = [];
    queue.consume(async (message, { attempt }) => {
      seen.push(message.jobId);
      message.jobId = 999;
      if (attempt === 1) throw new Error('again');
    });
    await queue.send({ jobId: 5 });
    await queue.drain();
    expect(seen).toEqual([5, 5]);
  });
});

/**
 * The SQS-triggered webhooks function (functions/handlers/webhooks.ts) over fauxqs: the delivery
 * queue's messages as SQS carries them reach the endpoint, signed; a malformed record alone is
 * reported failed, and a message SQS delivers again does not send the event twice.
 */
import { CreateQueueCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { SqsDeliveryQueue } from '#adapters/aws/sqs-delivery-queue.ts';
import { resolveWithDns, sendWebhook } from '#adapters/webhook-transport.ts';
import { createServices } from '#core/services.ts';
import type { Runtime } from '#functions/composition.ts';
import { systemClock } from '#ports/clock.ts';
import { BASE_MODELS, DEFAULT_BASE_MODEL } from '#test/support/app.ts';
import { startFauxqsForTests, type FauxqsForTests } from '#test/support/fauxqs.ts';
import { lambdaContext } from '#test/support/lambda.ts';
import { createTestJobPorts, type TestJobPorts } from '#test/support/test-engine.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
const { handler } = await import('#functions/handlers/webhooks.ts');

let fauxqs: FauxqsForTests;
let sqs: SQSClient;
beforeAll(async () => {
  fauxqs = await startFauxqsForTests();
  sqs = fauxqs.sqs();
});
afterAll(() => fauxqs.stop());

let server: Server;
let received: { headers: IncomingHttpHeaders; body: string }[];
let store: SqliteStore;
let jobs: TestJobPorts;
let queueUrl: string;

beforeEach(async () => {
  received = [];
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ headers: request.headers, body });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  ({ QueueUrl: queueUrl = '' } = await sqs.send(new CreateQueueCommand({ QueueName: `deliveries-${Date.now()}` })));
  store = new SqliteStore(':memory:');
  jobs = createTestJobPorts();
  const services = createServices({
    store,
    ...jobs,
    clock: systemClock,
    catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL },
    webhookDelivery: {
      queue: new SqsDeliveryQueue({ client: sqs, queueUrl }),
      resolve: resolveWithDns,
      send: sendWebhook,
      policy: { allowHttp: true, allowLoopback: true, allowPrivate: false },
    },
  });
  Object.assign(runtime, { services, store });
});

afterEach(async () => {
  await jobs.close();
  await store.close();
  await new Promise<void>((done) => server.close(() => done()));
});

/** What the event source mapping would hand the function: the queue's messages as SQS records. */
async function receiveAsEvent(): Promise<SQSEvent> {
  const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  return {
    Records: Messages.map(
      (message) =>
        ({
          messageId: message.MessageId!,
          receiptHandle: message.ReceiptHandle!,
          body: message.Body!,
          attributes: {},
          messageAttributes: {},
          md5OfBody: message.MD5OfBody!,
          eventSource: 'aws:sqs',
          eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:deliveries',
          awsRegion: 'us-east-1',
        }) as unknown as SQSRecord,
    ),
  };
}

const deliver = async (event: SQSEvent) => (await handler(event, lambdaContext('bakehouse-prod-Webhooks'), () => {})) as SQSBatchResponse;

describe('webhooks handler', () => {
  it('delivers the queued event signed, reports only a malformed record, and sends a redelivered message once', async () => {
    const actor = { userId: 'alice', isAdmin: false };
    const { id, secret } = await runtime.services.webhooks.create(actor, {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
      events: ['bake.completed'],
    });
    await runtime.services.webhooks.publish({
      id: 'evt_bake_9_complete',
      userId: 'alice',
      type: 'bake.completed',
      timestamp: new Date().toISOString(),
      data: { repo: 'r1', bake: 'b1', job_id: 9, status: 'complete', error: null },
    });

    const event = await receiveAsEvent();
    expect(event.Records).toHaveLength(1);
    expect(JSON.parse(event.Records[0]!.body)).toEqual({ deliveryId: expect.stringMatching(/^dlv_/), attempt: 1 });
    const malformed = { ...event.Records[0]!, messageId: 'bad-one', body: '{"jobId":12}' };

    expect(await deliver({ Records: [...event.Records, malformed] })).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad-one' }] });
    expect(received).toHaveLength(1);
    expect(new Webhook(secret).verify(received[0]!.body, received[0]!.headers as Record<string, string>)).toMatchObject({ type: 'bake.completed' });

    // SQS delivers at least once: the same record again sends nothing.
    expect(await deliver(event)).toEqual({ batchItemFailures: [] });
    expect(received).toHaveLength(1);
    const { data } = await runtime.services.webhooks.listDeliveries(actor, id, 10);
    expect(data).toMatchObject([{ state: 'delivered', attempt: 1, status_code: 204 }]);
  });
});

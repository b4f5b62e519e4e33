/**
 * fauxqs (SQS + S3 emulator, npm `fauxqs`) in-process for a test file, on a free loopback port.
 *
 * `startFauxqs()` binds 0.0.0.0, so this builds the same Fastify app with `buildApp()` and
 * listens on 127.0.0.1 itself. State is in memory and dies with `stop()`. Clients use path-style
 * S3 URLs (`forcePathStyle`), so no wildcard DNS is needed; fauxqs accepts any credentials and
 * does not check signatures.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

export interface FauxqsForTests {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  s3(): S3Client;
  sqs(): SQSClient;
  stop(): Promise<void>;
}

export async function startFauxqsForTests(): Promise<FauxqsForTests> {
  const app = buildApp({ logger: false, defaultRegion: REGION });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address !== 'object') throw new Error('fauxqs did not report its port');
  const endpoint = `http://127.0.0.1:${address.port}`;
  const clients: { destroy(): void }[] = [];
  const track = <T extends { destroy(): void }>(client: T): T => {
    clients.push(client);
    return client;
  };
  return {
    endpoint,
    s3: () => track(new S3Client({ endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true })),
    sqs: () => track(new SQSClient({ endpoint, region: REGION, credentials: CREDENTIALS })),
    stop: async () => {
      for (const client of clients) client.destroy();
      await app.close();
    },
  };
}

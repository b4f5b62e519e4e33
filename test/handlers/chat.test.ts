/**
 * The chat Lambda (functions/handlers/chat.ts) as the Lambda runtime calls a function behind a
 * RESPONSE_STREAM Function URL: `awslambda.streamifyResponse` hands the handler a writable
 * stream, and `HttpResponseStream.from` takes the status and headers before the body.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { ADMIN_KEY, createTestApp, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';
import { lambdaContext, useTestApp } from '../support/lambda.ts';
import { sseData } from '../support/sse.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));

const FUNCTION_URL_HOST = 'abcdefghij.lambda-url.us-east-1.on.aws';

interface Streamed {
  metadata?: { statusCode: number; headers: Record<string, string> };
  body: string;
}

type StreamingHandler = (event: unknown, stream: Writable, context: unknown) => Promise<void>;

let api: TestApp;
let handler: StreamingHandler;
/** The stream each invocation writes to, and the metadata given for it. */
const metadataOf = new WeakMap<Writable, Streamed['metadata']>();

beforeAll(async () => {
  api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
  useTestApp(runtime, api);
  // What Node's Lambda runtime provides for functions with response streaming.
  Object.assign(globalThis, {
    awslambda: {
      streamifyResponse: (fn: StreamingHandler) => fn,
      HttpResponseStream: { from: (stream: Writable, metadata: Streamed['metadata']) => (metadataOf.set(stream, metadata), stream) },
    },
  });
  ({ handler } = (await import('#functions/handlers/chat.ts')) as unknown as { handler: StreamingHandler });
});

afterAll(async () => {
  Reflect.deleteProperty(globalThis, 'awslambda');
  await api?.close();
});

/** A Function URL event (payload format 2.0) for a JSON POST. */
function functionUrlEvent(path: string, body: unknown) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', host: FUNCTION_URL_HOST },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghij',
      domainName: FUNCTION_URL_HOST,
      domainPrefix: 'abcdefghij',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'openai-node' },
      requestId: 'd4e5f6a7-0000-4000-8000-000000000001',
      routeKey: '$default',
      stage: '$default',
      time: '22/Nov/2026:09:00:00 +0000',
      timeEpoch: 1795338000000,
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

async function invoke(event: unknown): Promise<Streamed> {
  const streamed: Streamed = { body: '' };
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      streamed.body += chunk.toString();
      done();
    },
  });
  await handler(event, stream, lambdaContext('bakehouse-chat'));
  streamed.metadata = metadataOf.get(stream);
  return streamed;
}

describe('chat Lambda handler', () => {
  it('streams a chat reply as SSE, and points the sampler at the Function URL it was reached on', async () => {
    const body = { model: 'bakehouse/toy-instruct', messages: [{ role: 'user', content: 'hello from lambda' }], stream: true };
    const reply = invoke(functionUrlEvent('/v1/chat/completions', body));
    const sampler = await FakeSampler.started(api);
    expect(sampler.spec.sampler.relay_url).toBe(`https://${FUNCTION_URL_HOST}`);
    await sampler.answer(await sampler.take());

    const { metadata, body: text } = await reply;
    expect(metadata?.statusCode).toBe(200);
    expect(metadata?.headers['content-type']).toMatch(/text\/event-stream/);
    const frames = sseData(text);
    expect(frames.at(-1)).toBe('[DONE]');
    const content = frames
      .slice(0, -1)
      .map((frame) => JSON.parse(frame) as { choices: { delta: { content?: string } }[] })
      .map((chunk) => chunk.choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe('hello from lambda');
  });

  it('answers an error with its status and OpenAI body before any stream starts', async () => {
    const { metadata, body } = await invoke(functionUrlEvent('/v1/chat/completions', { model: 'no/such/model/1', messages: [{ role: 'user', content: 'x' }] }));
    expect(metadata?.statusCode).toBe(404);
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'model_not_found' } });
  });
});

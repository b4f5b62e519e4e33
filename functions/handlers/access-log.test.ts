/**
 * The API function's access log as CloudWatch receives it: one Powertools JSON line per request,
 * with the Lambda invocation's fields, written by the real handler (functions/handlers/api.ts).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { ADMIN_KEY, createTestApp, type TestApp } from '#test/support/app.ts';
import { lambdaContext, useTestApp } from '#test/support/lambda.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));

type BufferedHandler = (event: unknown, context: unknown) => Promise<{ statusCode: number; headers: Record<string, string> }>;

const HOST = 'abcdefghij.lambda-url.us-east-1.on.aws';

let api: TestApp;
let handler: BufferedHandler;
let stdout: MockInstance<typeof process.stdout.write>;

beforeAll(async () => {
  api = await createTestApp();
  useTestApp(runtime, api);
  ({ handler } = (await import('#functions/handlers/api.ts')) as unknown as { handler: BufferedHandler });
  await api.request('POST', '/v1/repo', { body: { repo_name: 'r1' } });
});
afterAll(() => api?.close());
beforeEach(() => {
  stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  return () => stdout.mockRestore();
});

/** A Function URL event (payload format 2.0) for a GET. */
function functionUrlEvent(path: string, query: string, headers: Record<string, string> = {}) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, host: HOST, ...headers },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghij',
      domainName: HOST,
      domainPrefix: 'abcdefghij',
      http: { method: 'GET', path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'bread-sdk' },
      requestId: 'd4e5f6a7-0000-4000-8000-000000000002',
      routeKey: '$default',
      stage: '$default',
      time: '22/Nov/2026:09:00:00 +0000',
      timeEpoch: 1795338000000,
    },
    isBase64Encoded: false,
  };
}

/** Every JSON line written to stdout. */
function loggedLines(): Record<string, unknown>[] {
  return stdout.mock.calls.map(([chunk]) => JSON.parse(String(chunk)) as Record<string, unknown>);
}

describe('API Lambda access log', () => {
  it('writes one Powertools JSON line per request with the Lambda request id', async () => {
    const result = await handler(functionUrlEvent('/v1/repo/r1/bakes/nope', 'checkpoint=3', { 'x-request-id': 'client-7' }), lambdaContext('bakehouse-api'));
    expect(result.statusCode).toBe(404);
    expect(result.headers['x-request-id']).toBe('client-7');

    const lines = loggedLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEqual({
      level: 'INFO',
      message: 'request',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      service: 'bakehouse-api',
      sampling_rate: 0,
      cold_start: expect.any(Boolean),
      function_arn: 'arn:aws:lambda:us-east-1:123456789012:function:bakehouse-api',
      function_memory_size: '512',
      function_name: 'bakehouse-api',
      function_request_id: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
      method: 'GET',
      route: '/v1/repo/:repo_name/bakes/:bake_name',
      path: '/v1/repo/r1/bakes/nope',
      status: 404,
      duration_ms: expect.any(Number),
      user_id: 'admin',
      request_id: 'client-7',
    });
    expect(JSON.stringify(lines)).not.toContain(ADMIN_KEY);
    expect(JSON.stringify(lines)).not.toContain('checkpoint=3');
  });

  it('generates a request id when none comes in, and logs it as answered', async () => {
    const result = await handler(functionUrlEvent('/v1/health', ''), lambdaContext('bakehouse-api'));
    const [line] = loggedLines();
    expect(line).toMatchObject({ route: '/v1/health', status: 200, cold_start: false });
    // Powertools leaves out empty values: a request with no user has no user_id key.
    expect(line).not.toHaveProperty('user_id');
    expect(line!.request_id).toBe(result.headers['x-request-id']);
    expect(line!.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

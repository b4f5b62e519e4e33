/**
 * `/mcp` through the API Lambda (functions/handlers/api.ts), as a Function URL invokes it: the
 * stateless MCP server answers each JSON-RPC POST with one buffered JSON body, which is all
 * Lambda's buffered responses can carry. test/e2e/mcp.test.ts drives the same server with the
 * official MCP client over a real local server.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '#functions/composition.ts';
import { ADMIN_KEY, createTestApp, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';
import { lambdaContext, useTestApp } from '../support/lambda.ts';

const runtime = vi.hoisted(() => ({}) as Runtime);
vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));

const HOST = 'abcdefghij.lambda-url.us-east-1.on.aws';

interface LambdaResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

let api: TestApp;
let handler: (event: unknown, context: unknown) => Promise<LambdaResult>;

beforeAll(async () => {
  api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
  useTestApp(runtime, api);
  ({ handler } = (await import('#functions/handlers/api.ts')) as unknown as { handler: typeof handler });
});

afterAll(async () => {
  await api?.close();
});

/** A Function URL event (payload format 2.0) carrying one JSON-RPC message to /mcp. */
function mcpEvent(message: unknown, headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}` }) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/mcp',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', host: HOST, ...headers },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghij',
      domainName: HOST,
      domainPrefix: 'abcdefghij',
      http: { method: 'POST', path: '/mcp', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'mcp-client' },
      requestId: 'd4e5f6a7-0000-4000-8000-000000000002',
      routeKey: '$default',
      stage: '$default',
      time: '22/Nov/2026:09:00:00 +0000',
      timeEpoch: 1795338000000,
    },
    body: JSON.stringify(message),
    isBase64Encoded: false,
  };
}

const invoke = (event: unknown) => handler(event, lambdaContext('bakehouse-api'));

describe('MCP through the API Lambda', () => {
  it('initializes, lists tools and calls one, each as one JSON response', async () => {
    const init = await invoke(
      mcpEvent({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'lambda-test', version: '1' } } }),
    );
    expect(init.statusCode).toBe(200);
    expect(init.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.parse(init.body)).toMatchObject({ id: 1, result: { serverInfo: { name: 'bakehouse' }, capabilities: { tools: {} } } });

    const list = JSON.parse((await invoke(mcpEvent({ jsonrpc: '2.0', id: 2, method: 'tools/list' }))).body) as { result: { tools: { name: string }[] } };
    expect(list.result.tools.map((tool) => tool.name)).toContain('create_bake');

    const created = await invoke(mcpEvent({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'create_repo', arguments: { repo_name: 'lambda_repo' } } }));
    expect(JSON.parse(created.body)).toMatchObject({ id: 3, result: { structuredContent: { repo_name: 'lambda_repo' } } });
    expect((await api.request('GET', '/v1/repo/lambda_repo')).status).toBe(200);
  });

  it('chats through the chat tool: the whole reply in one result, the sampler relayed through the URL it was reached on', async () => {
    const messages = [{ role: 'user', content: 'hello over mcp' }];
    const reply = invoke(mcpEvent({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'chat', arguments: { model: 'bakehouse/toy-instruct', messages } } }));
    const sampler = await FakeSampler.started(api);
    expect(sampler.spec.sampler.relay_url).toBe(`https://${HOST}`);
    await sampler.answer(await sampler.take());
    const { result } = JSON.parse((await reply).body) as { result: { structuredContent: { object: string; choices: { message: { content: string } }[] } } };
    expect(result.structuredContent.object).toBe('chat.completion');
    expect(result.structuredContent.choices[0]?.message.content).toBe('hello over mcp');
  });

  it("answers a missing bake as a tool error with the API's sentence", async () => {
    const viaHttp = await api.request('GET', '/v1/repo/lambda_repo/bakes/nope');
    const answer = await invoke(mcpEvent({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'get_bake', arguments: { repo_name: 'lambda_repo', bake_name: 'nope' } } }));
    expect(JSON.parse(answer.body)).toMatchObject({ id: 4, result: { isError: true, content: [{ type: 'text', text: viaHttp.body.message }] } });
  });

  it('offers no server-to-client stream: GET answers 405 naming POST, which MCP clients accept', async () => {
    const answer = await api.request('GET', '/mcp');
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('POST');
  });

  it('refuses a request without an API key with 401 in the API error shape', async () => {
    const answer = await invoke(mcpEvent({ jsonrpc: '2.0', id: 5, method: 'tools/list' }, {}));
    expect(answer.statusCode).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});

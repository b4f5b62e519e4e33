import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_KEY, createRepo, createTestApp, expectError, type TestApp } from '#test/support/app.ts';

let api: TestApp;
afterEach(() => api.close());

describe('error envelope', () => {
  beforeEach(async () => {
    api = await createTestApp();
  });

  it('answers an unknown /v1 route with 404 in the error shape', async () => {
    const response = await api.request('GET', '/v1/nothing-here');
    expectError(response, 404, 'RESOURCE_NOT_FOUND');
    expect(Object.keys(response.body).sort()).toEqual(['code', 'message']);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('answers an unknown method on a known path with 405 and the methods it allows', async () => {
    const response = await api.request('PATCH', '/v1/repo');
    expectError(response, 405, 'METHOD_NOT_ALLOWED', 'Method PATCH is not allowed on /v1/repo; use GET, HEAD, POST, PUT');
    expect(Object.keys(response.body).sort()).toEqual(['code', 'message']);
    expect(response.headers.get('allow')).toBe('GET, HEAD, POST, PUT');
    expect(response.headers.get('x-should-retry')).toBe('false');
  });

  it('finds the allowed methods of paths with parameters from the registered routes', async () => {
    const prompt = await api.request('POST', '/v1/repo/r1/prompts/p1');
    expectError(prompt, 405, 'METHOD_NOT_ALLOWED');
    expect(prompt.headers.get('allow')).toBe('DELETE, GET, HEAD, PUT');
    const health = await api.request('DELETE', '/v1/health', { key: null });
    expectError(health, 405, 'METHOD_NOT_ALLOWED');
    expect(health.headers.get('allow')).toBe('GET, HEAD');
  });

  it('asks for a key before revealing which methods a /v1 path allows', async () => {
    const response = await api.request('PATCH', '/v1/repo', { key: null });
    expectError(response, 401, 'UNAUTHORIZED');
    expect(response.headers.get('allow')).toBeNull();
  });

  it('answers an unknown route outside /v1 with 404 without asking for a key', async () => {
    const response = await api.request('GET', '/nothing-here', { key: null });
    expectError(response, 404, 'RESOURCE_NOT_FOUND');
  });

  it('asks for a key before revealing whether a /v1 route exists', async () => {
    const response = await api.request('GET', '/v1/nothing-here', { key: null });
    expectError(response, 401, 'UNAUTHORIZED', 'Invalid API key');
  });

  it('answers invalid JSON with 422', async () => {
    const response = await api.request('POST', '/v1/repo', { body: '{"repo_name": ', headers: { 'content-type': 'application/json' } });
    expectError(response, 422, 'VALIDATION_ERROR', 'Request body is not valid JSON');
  });

  it('answers an empty JSON body on POST /v1/repo with 422, not 400', async () => {
    const response = await api.request('POST', '/v1/repo', { body: '', headers: { 'content-type': 'application/json' } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('answers a JSON body that is not an object with 422', async () => {
    const response = await api.request('POST', '/v1/repo', { body: ['r1'] });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('names the failing field and adds field-level detail to a 422', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 42 } });
    expectError(response, 422, 'VALIDATION_ERROR', /^repo_name: /);
    expect(response.body.detail).toEqual([{ loc: ['body', 'repo_name'], msg: expect.any(String), type: 'invalid_type' }]);
  });

  it('accepts a JSON content type with a charset', async () => {
    const response = await api.request('POST', '/v1/repo', {
      body: JSON.stringify({ repo_name: 'r1' }),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(response.status).toBe(201);
  });

  it('ignores the X-Stainless headers and the SDK user agent', async () => {
    const response = await api.request('POST', '/v1/repo', {
      body: { repo_name: 'r1' },
      headers: { 'x-stainless-lang': 'python', 'x-stainless-retry-count': '0', 'user-agent': 'Bread/Python 1.3.6' },
    });
    expect(response.status).toBe(201);
  });

  it('ignores a body sent to a bodiless route without a content type (TypeScript SDK)', async () => {
    await createRepo(api.request, 'r1');
    await api.request('POST', '/v1/repo/r1/prompts', { body: { prompt_name: 'p1', messages: [] } });
    const response = await api.request('DELETE', '/v1/repo/r1/prompts/p1', { body: 'not json at all' });
    expect(response.status).toBe(200);
  });
});

describe('body size limit', () => {
  const LIMIT = 256;

  beforeEach(async () => {
    api = await createTestApp({ maxBodyBytes: LIMIT });
  });

  it('accepts a body within the limit', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', pad: 'x'.repeat(100) } });
    expect(response.status).toBe(201);
  });

  it('refuses a body over the limit with 413', async () => {
    const response = await api.request('POST', '/v1/repo', { body: { repo_name: 'r1', pad: 'x'.repeat(LIMIT) } });
    expectError(response, 413, 'PAYLOAD_TOO_LARGE');
    expect(response.headers.get('x-should-retry')).toBe('false');
    expect((await api.request('GET', '/v1/repo')).body).toEqual({ repos: [] });
  });

  it('counts the real bytes when Content-Length understates the body', async () => {
    const body = JSON.stringify({ repo_name: 'r1', pad: 'x'.repeat(LIMIT) });
    const lying = new Request('http://localhost/v1/repo', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'content-length': '20' },
      body,
    });
    expect(lying.headers.get('content-length')).toBe('20');

    const response = await api.app.request(lying);
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ message: `Request body exceeds ${LIMIT} bytes`, code: 'PAYLOAD_TOO_LARGE' });
    expect((await api.request('GET', '/v1/repo')).body).toEqual({ repos: [] });
  });

  it('refuses a declared Content-Length over the limit before reading the body', async () => {
    const response = await api.request('POST', '/v1/repo', {
      body: { repo_name: 'r1' },
      headers: { 'content-length': String(LIMIT + 1) },
    });
    expectError(response, 413, 'PAYLOAD_TOO_LARGE');
  });
});

/**
 * The access log (one entry per request) and the request id it carries, through the whole app as
 * the runtimes serve it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_KEY, completeBake, createBake, createTestApp, createUserKey, seedTarget, type TestApp } from '#test/support/app.ts';
import { formatAccessLine, type AccessLogEntry } from './access-log.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let api: TestApp;
let entries: AccessLogEntry[];
beforeEach(async () => {
  entries = [];
  api = await createTestApp({ serveBlobs: true, accessLog: (entry) => entries.push(entry) });
});
afterEach(() => api.close());

/** The one entry the last request wrote. */
function lastEntry(): AccessLogEntry {
  expect(entries).toHaveLength(1);
  return entries.pop()!;
}

describe('access log', () => {
  it('logs method, route pattern, path, status, duration, user and request id', async () => {
    await api.request('POST', '/v1/repo', { body: { repo_name: 'r1' } });
    entries = [];
    const response = await api.request('GET', '/v1/repo/r1');
    expect(response.status).toBe(200);
    const entry = lastEntry();
    expect(entry).toEqual({
      method: 'GET',
      route: '/v1/repo/:repo_name',
      path: '/v1/repo/r1',
      status: 200,
      duration_ms: expect.any(Number),
      user_id: 'admin',
      request_id: response.headers.get('x-request-id'),
    });
    expect(entry.duration_ms).toBeGreaterThanOrEqual(0);
    expect(entry.request_id).toMatch(UUID);
  });

  it('logs the user a key belongs to, and the route pattern of a domain error', async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    entries = [];
    expect((await api.request('GET', '/v1/repo/nope/bakes/b1', { key: aliceKey })).status).toBe(404);
    expect(lastEntry()).toMatchObject({ route: '/v1/repo/:repo_name/bakes/:bake_name', status: 404, user_id: 'alice' });
  });

  it('logs refusals before authentication with the route refused and no user', async () => {
    expect((await api.request('GET', '/v1/repo/r1', { key: null })).status).toBe(401);
    expect(lastEntry()).toMatchObject({ route: '/v1/repo/:repo_name', status: 401, user_id: null });
    expect((await api.request('GET', '/v1/repo/r1', { key: 'bh_wrong' })).status).toBe(401);
    expect(lastEntry()).toMatchObject({ status: 401, user_id: null });
  });

  it('logs validation errors, unmatched paths and wrong methods with their status', async () => {
    expect((await api.request('POST', '/v1/repo', { body: { repo_name: 'a b' } })).status).toBe(422);
    expect(lastEntry()).toMatchObject({ method: 'POST', route: '/v1/repo', status: 422 });
    expect((await api.request('GET', '/v1/nothing/here')).status).toBe(404);
    expect(lastEntry()).toMatchObject({ route: null, path: '/v1/nothing/here', status: 404, user_id: 'admin' });
    expect((await api.request('PATCH', '/v1/repo')).status).toBe(405);
    expect(lastEntry()).toMatchObject({ method: 'PATCH', route: null, status: 405 });
  });

  it('logs a body over the limit with 413', async () => {
    const small = await createTestApp({ maxBodyBytes: 64, accessLog: (entry) => entries.push(entry) });
    try {
      const response = await small.request('POST', '/v1/repo', { body: { repo_name: 'r'.repeat(200) } });
      expect(response.status).toBe(413);
      expect(lastEntry()).toMatchObject({ route: '/v1/repo', status: 413, request_id: response.headers.get('x-request-id') });
    } finally {
      await small.close();
    }
  });

  it('never logs API keys, query strings or the signature of a blob URL', async () => {
    await seedTarget(api.request, 'r1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await completeBake(api, 'r1', 'b1', [3]);
    const url = new URL((await api.request('GET', '/v1/repo/r1/bakes/b1/download?expires_in=60')).body.url);
    const signature = url.searchParams.get('signature')!;
    entries = [];
    expect((await api.app.request(`${url.pathname}${url.search}`)).status).toBe(200);
    expect(lastEntry()).toMatchObject({ route: '/v1/blobs/:key{[\\s\\S]+}', path: url.pathname, status: 200, user_id: null });

    await api.request('GET', '/v1/models/download?name=admin/r1/b1/3&expires_in=60');
    const logged = JSON.stringify(entries);
    expect(logged).toContain('"path":"/v1/models/download"');
    for (const secret of [signature, 'expires', 'expires_in', 'name=', ADMIN_KEY]) expect(logged).not.toContain(secret);
  });
});

describe('x-request-id', () => {
  it('echoes a well-formed incoming id and logs it', async () => {
    const response = await api.request('GET', '/v1/health', { headers: { 'x-request-id': 'client-42_abc=' } });
    expect(response.headers.get('x-request-id')).toBe('client-42_abc=');
    expect(lastEntry().request_id).toBe('client-42_abc=');
  });

  it.each([
    ['with spaces', 'a b'],
    ['with a forged log line', 'abc\r\nGET / 200'],
    ['too long', 'x'.repeat(129)],
    ['empty', ''],
  ])('replaces an id %s with a new one', async (_, incoming) => {
    const headers = new Headers();
    try {
      headers.set('x-request-id', incoming);
    } catch {
      // Not even a valid header value: the request arrives without it.
    }
    const response = await api.app.request('/v1/health', { headers });
    const echoed = response.headers.get('x-request-id');
    expect(echoed).toMatch(UUID);
    expect(lastEntry().request_id).toBe(echoed);
  });

  it('is on error answers too, and differs per request', async () => {
    const first = await api.request('GET', '/v1/repo/nope');
    const second = await api.request('GET', '/v1/repo/nope');
    expect(first.status).toBe(404);
    expect(first.headers.get('x-request-id')).toMatch(UUID);
    expect(second.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'));
  });
});

describe('formatAccessLine', () => {
  it('gives the console one readable line', () => {
    const entry: AccessLogEntry = {
      method: 'GET',
      route: '/v1/repo/:repo_name',
      path: '/v1/repo/demo',
      status: 200,
      duration_ms: 3.1,
      user_id: 'alice',
      request_id: 'req-1',
    };
    expect(formatAccessLine(entry)).toBe('GET /v1/repo/demo 200 3.1ms user=alice req=req-1');
    expect(formatAccessLine({ ...entry, user_id: null, status: 401 })).toBe('GET /v1/repo/demo 401 3.1ms user=- req=req-1');
  });
});

/**
 * Hostile input: bodies nested past any sane depth, batches of many entries, malformed blob keys
 * under valid signatures. Each gets a 4xx in the error shape, never a 500, and none of them keeps
 * other requests waiting.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { blobSignature, encodeBlobKey } from '#adapters/embedded/local-blobs.ts';
import { MAX_BODY_DEPTH } from '#http/middleware/body.ts';
import { MAX_BATCH_ENTRIES } from '#schemas/bread.ts';
import {
  completeBake,
  createRepo,
  createTestApp,
  expectError,
  seedTarget,
  type RequestFn,
  type TestApp,
} from '#test/support/app.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { TEST_SIGNING_KEY } from '#test/support/test-engine.ts';

let api: TestApp;
afterEach(() => api.close());

/** `{"a":{"a":…1…}}`: `levels` objects, one inside the other. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let level = 0; level < levels; level++) value = { a: value };
  return value;
}

/** The same as JSON text, for depths that JSON.stringify itself cannot reach. */
const nestedText = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

const as = (levels: number) => Array<string>(levels).fill('a');

/**
 * Bodies whose every part is fixed but one value, which the test nests: `levels` is the depth the
 * whole body then has, and `path` the keys leading to that value.
 */
const BODIES: { name: string; method: string; path: string; body: (value: string) => string; at: (string | number)[] }[] = [
  {
    name: "a prompt's tools",
    method: 'POST',
    path: '/v1/repo/r1/prompts',
    body: (value) => `{"prompt_name":"deep","messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":${value}}}]}`,
    at: ['tools', 0, 'function', 'parameters'],
  },
  {
    name: "a target's overrides.extra_kwargs",
    method: 'POST',
    path: '/v1/repo/r1/targets',
    body: (value) => `{"target_name":"deep","template":"t1","overrides":{"extra_kwargs":${value}}}`,
    at: ['overrides', 'extra_kwargs'],
  },
  {
    name: "a bake's overrides.extra_kwargs",
    method: 'POST',
    path: '/v1/repo/r1/bakes',
    body: (value) => `{"bake_name":"deep","template":"default","overrides":{"datasets":[{"target":"t1"}],"extra_kwargs":${value}}}`,
    at: ['overrides', 'extra_kwargs'],
  },
  {
    name: "a bake's overrides.wandb",
    method: 'POST',
    path: '/v1/repo/r1/bakes',
    body: (value) => `{"bake_name":"deep","template":"default","overrides":{"datasets":[{"target":"t1"}],"wandb":${value}}}`,
    at: ['overrides', 'wandb'],
  },
  {
    name: 'a prompt batch',
    method: 'POST',
    path: '/v1/repo/r1/prompts/batch',
    body: (value) => `{"prompts":{"deep":[{"role":"system","content":"hi","extra":${value}}]}}`,
    at: ['prompts', 'deep', 0, 'extra'],
  },
  {
    name: 'a target batch',
    method: 'POST',
    path: '/v1/repo/r1/targets/batch',
    body: (value) => `{"targets":[{"target_name":"deep","template":"t1","overrides":{"extra_kwargs":${value}}}]}`,
    at: ['targets', 0, 'overrides', 'extra_kwargs'],
  },
  {
    name: 'a chat request',
    method: 'POST',
    path: '/v1/chat/completions',
    body: (value) => `{"model":"Qwen/Qwen3-32B","messages":[{"role":"user","content":"hi"}],"metadata":${value}}`,
    at: ['metadata'],
  },
];

/** The levels a nested value may have so that the whole body has `depth` levels. */
const levelsFor = ({ at }: { at: (string | number)[] }, depth: number) => depth - at.length;

const send = (request: RequestFn, { method, path }: { method: string; path: string }, body: string) =>
  request(method, path, { body, headers: { 'content-type': 'application/json' } });

describe('deeply nested bodies', () => {
  it.each(BODIES)('refuses $name nested one level too deep with 422 naming where', async (shape) => {
    api = await createTestApp();
    await seedTarget(api.request, 'r1');
    const response = await send(api.request, shape, shape.body(nestedText(levelsFor(shape, MAX_BODY_DEPTH + 1))));

    expect(response.status, response.text).toBe(422);
    const where = [...shape.at, ...as(levelsFor(shape, MAX_BODY_DEPTH))];
    const message = `${where.join('.')}: nested more than ${MAX_BODY_DEPTH} levels deep; a request body may nest JSON at most ${MAX_BODY_DEPTH} levels`;
    if (shape.path === '/v1/chat/completions') {
      expect(response.body.error).toMatchObject({ message, code: 'validation_error' });
    } else {
      expectError(response, 422, 'VALIDATION_ERROR', message);
      expect(response.body.detail).toEqual([{ loc: ['body', ...where], msg: expect.any(String), type: 'too_deep' }]);
    }
  });

  it.each([4_100, 100_000, 1_000_000])('refuses a body nested %i levels deep with 422, not 500', async (levels) => {
    api = await createTestApp();
    await seedTarget(api.request, 'r1');
    for (const shape of BODIES) {
      const response = await send(api.request, shape, shape.body(nestedText(levels)));
      expect(response.status, `${shape.name}: ${response.text}`).toBe(422);
    }
    const arrays = `${'['.repeat(levels)}${']'.repeat(levels)}`;
    expectError(await api.request('POST', '/v1/repo', { body: arrays, headers: { 'content-type': 'application/json' } }), 422, 'VALIDATION_ERROR');
  });

  it('counts only brackets outside strings', async () => {
    api = await createTestApp();
    await createRepo(api.request, 'r1');
    const content = `"quoted \\" ${'{['.repeat(MAX_BODY_DEPTH * 4)}"`;
    const response = await api.request('POST', '/v1/repo/r1/prompts', {
      body: `{"prompt_name":"p1","messages":[{"role":"system","content":${content}}]}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status, response.text).toBe(201);
  });

  it('stores and runs the deepest bodies allowed, within DynamoDB’s nesting limit', async () => {
    api = await createTestApp({ store: createDynamoTestStore });
    await seedTarget(api.request, 'r1');
    for (const [index, shape] of BODIES.entries()) {
      if (shape.path === '/v1/chat/completions') continue;
      const body = shape.body(JSON.stringify(nested(levelsFor(shape, MAX_BODY_DEPTH)))).replaceAll('"deep"', `"deep${index}"`);
      const response = await send(api.request, shape, body);
      expect(response.status, `${shape.name}: ${response.text}`).toBeLessThan(300);
      if (shape.path.endsWith('/batch')) expect(response.body.failed, shape.name).toEqual({});
    }
    // Starting the bake stores its config as run on the job record and writes the engine's spec.
    const done = await completeBake(api, 'r1', 'deep3', [1]);
    expect(done.body.config.wandb).toEqual(nested(levelsFor(BODIES[3]!, MAX_BODY_DEPTH)));
  });
});

describe('batches', () => {
  it('refuse more than the most entries a batch may hold with 422', async () => {
    api = await createTestApp();
    await seedTarget(api.request, 'r1');
    const names = Array.from({ length: MAX_BATCH_ENTRIES + 1 }, (_, i) => `e${i}`);
    const message = `A batch may create at most ${MAX_BATCH_ENTRIES} entries; split it into several calls`;

    const prompts = Object.fromEntries(names.map((name) => [name, []]));
    expectError(await api.request('POST', '/v1/repo/r1/prompts/batch', { body: { prompts } }), 422, 'VALIDATION_ERROR', message);
    const targets = names.map((target_name) => ({ target_name, template: 't1' }));
    expectError(await api.request('POST', '/v1/repo/r1/targets/batch', { body: { targets } }), 422, 'VALIDATION_ERROR', message);
    const bakes = names.map((bake_name) => ({ bake_name }));
    expectError(await api.request('PUT', '/v1/repo/r1/bakes/batch', { body: { bakes } }), 422, 'VALIDATION_ERROR', message);
    expect((await api.request('GET', '/v1/repo/r1/prompts')).body.prompts).toEqual(['student', 'teacher']);
  });

  it('let /v1/health answer while a batch of the most entries is being created', async () => {
    api = await createTestApp();
    await createRepo(api.request, 'r1');
    const prompts = Object.fromEntries(
      Array.from({ length: MAX_BATCH_ENTRIES }, (_, i) => [`p${i}`, [{ role: 'system', content: `You are number ${i}.` }]]),
    );

    // A request from the network arrives as an I/O event, which runs only when the event loop
    // gets a turn: the health check is sent from a macrotask once the batch has begun storing.
    let stored = 0;
    let storedWhenHealthAnswered: number | undefined;
    let health: Promise<void> | undefined;
    const put = api.store.put.bind(api.store);
    vi.spyOn(api.store, 'put').mockImplementation((item, condition) => {
      stored += 1;
      health ??= new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => api.request('GET', '/v1/health', { key: null }))
        .then((response) => {
          expect(response.status).toBe(200);
          storedWhenHealthAnswered = stored;
        });
      return put(item, condition);
    });

    const batch = await api.request('POST', '/v1/repo/r1/prompts/batch', { body: { prompts } });
    await health;
    expect(batch.body.created).toHaveLength(MAX_BATCH_ENTRIES);
    expect(storedWhenHealthAnswered).toBeLessThan(MAX_BATCH_ENTRIES);
  });
});

describe('GET /v1/blobs/{key} with a valid signature', () => {
  /** A URL for `key` signed with the route's own key, as LocalBlobs would sign it. */
  function signedUrl(key: string): string {
    const expires = Math.floor(Date.now() / 1000) + 60;
    return `/v1/blobs/${encodeBlobKey(key)}?expires=${expires}&signature=${blobSignature(key, expires, TEST_SIGNING_KEY)}`;
  }

  it.each([
    ['an empty segment', 'a//b'],
    ['the reserved .partial/ prefix', '.partial/x'],
    ['a control character', 'a/\u0001b'],
    ['a newline', 'a/b\nc'],
    ['more than 1024 bytes', `a/${'x'.repeat(1024)}`],
  ])('answers a key with %s with 400 in the error shape', async (_, key) => {
    api = await createTestApp({ serveBlobs: true });
    const response = await api.app.request(signedUrl(key));
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      message: 'This blob URL names a key no blob can have; ask the API for a new download URL',
      code: 'INVALID_INPUT',
    });
  });

  it('still serves a well-formed key', async () => {
    api = await createTestApp({ serveBlobs: true });
    await api.jobs.blobs.put('a/b', 'bytes');
    const response = await api.app.request(signedUrl('a/b'));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('bytes');
  });
});

/**
 * Checkpoint downloads (bread-api.md §12.2): signed URLs for a bake's archives, by bake and by
 * model name, fetched back through the app's own blob route as a client would.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  completeBake,
  createBake,
  createRepo,
  createTestApp,
  createUserKey,
  expectError,
  seedTarget,
  waitForJob,
  waitUntilRunning,
  type TestApp,
} from '#test/support/app.ts';
import type { Scripted } from '#test/support/test-engine.ts';

const B1 = '/v1/repo/r1/bakes/b1';

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp({ serveBlobs: true });
  await seedTarget(api.request, 'r1');
  await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
});
afterEach(() => api.close());

/** Fetches a signed URL through the app, with no API key, as a browser or curl would. */
async function fetchUrl(url: string) {
  const response = await api.app.request(url);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('GET R/bakes/{b}/download', () => {
  beforeEach(async () => {
    await completeBake(api, 'r1', 'b1', [100, 183, 21]);
  });

  it('signs the latest checkpoint by default, for 3600 s, and the URL serves its archive', async () => {
    const response = await api.request('GET', `${B1}/download`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ url: expect.any(String), expires_in: 3600, checkpoint: 183, bake_name: 'b1' });
    const url = new URL(response.body.url);
    expect(url.pathname).toMatch(/^\/v1\/blobs\/jobs\/\d+\/ckpts\/183\.tar\.gz$/);
    expect(Number(url.searchParams.get('expires')) - Math.floor(Date.now() / 1000)).toBeGreaterThan(3500);

    const archive = await fetchUrl(response.body.url);
    expect(archive.status).toBe(200);
    expect(archive.headers.get('content-type')).toBe('application/octet-stream');
    expect(archive.text).toBe('archive of step 183');
  });

  it('signs an explicit checkpoint', async () => {
    const response = await api.request('GET', `${B1}/download?checkpoint=21`);
    expect(response.body).toMatchObject({ checkpoint: 21, bake_name: 'b1', expires_in: 3600 });
    expect((await fetchUrl(response.body.url)).text).toBe('archive of step 21');
  });

  it.each([1, 604_800])('echoes expires_in %i', async (expiresIn) => {
    const response = await api.request('GET', `${B1}/download?expires_in=${expiresIn}`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ expires_in: expiresIn, checkpoint: 183 });
  });

  it.each(['expires_in=0', 'expires_in=604801', 'expires_in=-5', 'expires_in=soon', 'checkpoint=-1', 'checkpoint=latest'])(
    'refuses %s with 422',
    async (query) => {
      expectError(await api.request('GET', `${B1}/download?${query}`), 422, 'VALIDATION_ERROR');
    },
  );

  it('answers an unknown checkpoint with 404 naming the ones saved', async () => {
    expectError(
      await api.request('GET', `${B1}/download?checkpoint=7`),
      404,
      'RESOURCE_NOT_FOUND',
      "Checkpoint 7 not found: bake 'b1' saved checkpoints 183, 100, 21",
    );
  });

  it('refuses a URL whose signature was tampered with, or that is missing it, with 403', async () => {
    const url = new URL((await api.request('GET', `${B1}/download`)).body.url);
    const signature = url.searchParams.get('signature')!;
    url.searchParams.set('signature', `${signature[0] === '0' ? '1' : '0'}${signature.slice(1)}`);
    const tampered = await fetchUrl(url.href);
    expect(tampered.status).toBe(403);
    expect(JSON.parse(tampered.text)).toEqual({
      message: 'This blob URL has an invalid signature; ask the API for a new download URL',
      code: 'FORBIDDEN',
    });

    const other = new URL((await api.request('GET', `${B1}/download?checkpoint=21`)).body.url);
    other.pathname = other.pathname.replace('21.tar.gz', '183.tar.gz');
    expect((await fetchUrl(other.href)).status).toBe(403);

    url.search = '';
    expect((await fetchUrl(url.href)).status).toBe(403);
  });
});

describe('GET R/bakes/{b}/download of a bake without checkpoints', () => {
  /** Runs the target's stim and rollout, then starts the bake with the test engine's `script`. */
  async function startBake(script: Scripted) {
    for (const kind of ['stim', 'rollout']) {
      await api.request('POST', `/v1/repo/r1/targets/t1/${kind}`);
      await waitForJob(api.request, `/v1/repo/r1/targets/t1/${kind}`);
    }
    api.jobs.compute.script = () => script;
    await api.request('POST', B1);
  }

  it('answers a bake that never ran with 404 saying how to start it', async () => {
    expectError(
      await api.request('GET', `${B1}/download`),
      404,
      'RESOURCE_NOT_FOUND',
      "Bake 'b1' has no checkpoint yet: it has not been run; start it with POST /v1/repo/r1/bakes/b1",
    );
  });

  it('answers a running bake with 404 saying how far it is, by bake and by model name', async () => {
    await startBake({ checkpoints: [5], hold: true });
    await waitUntilRunning(api.request, B1);
    const running = "Bake 'b1' has no checkpoint yet: it is running (50% done); download it when it completes";
    expectError(await api.request('GET', `${B1}/download`), 404, 'RESOURCE_NOT_FOUND', running);
    expectError(await api.request('GET', `${B1}/download?checkpoint=5`), 404, 'RESOURCE_NOT_FOUND', running);
    expectError(await api.request('GET', '/v1/models/download?name=admin/r1/b1/5'), 404, 'RESOURCE_NOT_FOUND', running);
  });

  it('answers a failed bake with 404 giving the reason, by bake and by model name', async () => {
    await startBake({ fail: 'Out of GPU memory; lower batch_size.' });
    expect((await waitForJob(api.request, B1)).body.status).toBe('failed');
    const failed = "Bake 'b1' failed, so it has no checkpoint to download: Out of GPU memory; lower batch_size.";
    expectError(await api.request('GET', `${B1}/download`), 404, 'RESOURCE_NOT_FOUND', failed);
    expectError(await api.request('GET', '/v1/models/download?name=admin/r1/b1/5'), 404, 'RESOURCE_NOT_FOUND', failed);
  });

  it('answers a complete bake that saved no checkpoint with 404', async () => {
    await completeBake(api, 'r1', 'b1', []);
    expectError(
      await api.request('GET', `${B1}/download`),
      404,
      'RESOURCE_NOT_FOUND',
      "Bake 'b1' completed without saving a checkpoint, so there is nothing to download",
    );
  });

  it('answers an unknown bake with 404 naming it', async () => {
    expectError(await api.request('GET', '/v1/repo/r1/bakes/nope/download'), 404, 'RESOURCE_NOT_FOUND', "Bake 'nope' not found");
  });
});

describe('GET /v1/models/download', () => {
  beforeEach(async () => {
    await completeBake(api, 'r1', 'b1', [100, 183]);
  });

  it('signs the named checkpoint, with the bake segment as bake_name', async () => {
    const response = await api.request('GET', '/v1/models/download?name=admin/r1/b1/100');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ url: expect.any(String), expires_in: 3600, checkpoint: 100, bake_name: 'b1' });
    expect((await fetchUrl(response.body.url)).text).toBe('archive of step 100');
  });

  it('takes the name percent-encoded, and expires_in', async () => {
    const response = await api.request('GET', `/v1/models/download?name=${encodeURIComponent('admin/r1/b1/183')}&expires_in=60`);
    expect(response.body).toMatchObject({ checkpoint: 183, expires_in: 60 });
  });

  it.each(['admin/r1/b1', 'admin/r1/b1/latest', 'admin/r1/b1/183/x', 'Qwen/Qwen3-32B', ''])('refuses the malformed name %j with 422', async (name) => {
    expectError(await api.request('GET', `/v1/models/download?name=${encodeURIComponent(name)}`), 422, 'VALIDATION_ERROR');
  });

  it('refuses a missing name with 422', async () => {
    expectError(await api.request('GET', '/v1/models/download'), 422, 'VALIDATION_ERROR');
  });

  it.each(['expires_in=0', 'expires_in=604801'])('refuses %s with 422', async (query) => {
    expectError(await api.request('GET', `/v1/models/download?name=admin/r1/b1/183&${query}`), 422, 'VALIDATION_ERROR');
  });

  it.each(['admin/r1/nope/183', 'admin/nope/b1/183', 'nobody/r1/b1/183'])('answers the unknown %s with 404', async (name) => {
    expectError(await api.request('GET', `/v1/models/download?name=${name}`), 404, 'RESOURCE_NOT_FOUND', 'Checkpoint not found');
  });

  it('answers an unknown checkpoint of a visible bake with 404 naming the ones saved', async () => {
    expectError(
      await api.request('GET', '/v1/models/download?name=admin/r1/b1/7'),
      404,
      'RESOURCE_NOT_FOUND',
      "Checkpoint 7 not found: bake 'b1' saved checkpoints 183, 100",
    );
  });

  it("hides another user's checkpoint from a user key with 404, and serves the user's own", async () => {
    const aliceKey = await createUserKey(api.request, 'alice');
    expectError(await api.request('GET', '/v1/models/download?name=admin/r1/b1/183', { key: aliceKey }), 404, 'RESOURCE_NOT_FOUND', 'Checkpoint not found');

    const asAlice = { key: aliceKey };
    await createRepo(api.request, 'ra', undefined, asAlice);
    for (const [name, messages] of [['teacher', [{ role: 'system', content: 'Be terse.' }]], ['student', []]] as const) {
      const response = await api.request('POST', '/v1/repo/ra/prompts', { key: aliceKey, body: { prompt_name: name, messages } });
      expect(response.status).toBe(201);
    }
    const target = await api.request('POST', '/v1/repo/ra/targets', {
      key: aliceKey,
      body: { target_name: 't', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: ['q'] }] } },
    });
    expect(target.status).toBe(201);
    await api.request('POST', '/v1/repo/ra/bakes', { key: aliceKey, body: { bake_name: 'ab', template: 'default', overrides: { datasets: [{ target: 't' }] } } });
    for (const path of ['/v1/repo/ra/targets/t/stim', '/v1/repo/ra/targets/t/rollout', '/v1/repo/ra/bakes/ab']) {
      await api.request('POST', path, asAlice);
      await waitForJob((method, p, options) => api.request(method, p, { ...options, ...asAlice }), path);
    }

    const own = await api.request('GET', '/v1/models/download?name=alice/ra/ab/2', asAlice);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ checkpoint: 2, bake_name: 'ab' });
    // The admin key may read any user's checkpoint.
    expect((await api.request('GET', '/v1/models/download?name=alice/ra/ab/2')).status).toBe(200);
  });
});

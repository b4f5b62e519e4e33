/**
 * The web console's files at /console (functions/http/routes/console.ts): hashed assets cached
 * for good, the page revalidated, no API key needed, browsers at `/` sent there, and a clear
 * sentence when the console was never built.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createTestApp, expectError, type TestApp } from '../support/app.ts';

const built = mkdtempSync(join(tmpdir(), 'bakehouse-console-'));
const PAGE = '<!doctype html><title>console</title><script type="module" src="/console/assets/index-Ab12Cd34.js"></script>';
const SCRIPT = `export const filler = ${JSON.stringify('x'.repeat(4096))};\n`;
mkdirSync(join(built, 'assets'));
writeFileSync(join(built, 'index.html'), PAGE);
writeFileSync(join(built, 'assets', 'index-Ab12Cd34.js'), SCRIPT);
writeFileSync(join(tmpdir(), 'bakehouse-console-secret.txt'), 'not for the web');

let api: TestApp;
afterEach(async () => api?.close());
afterAll(() => {
  rmSync(built, { recursive: true, force: true });
  rmSync(join(tmpdir(), 'bakehouse-console-secret.txt'), { force: true });
});

describe('the console route', () => {
  it('serves the page with no API key, revalidated on every load and locked to this origin', async () => {
    api = await createTestApp({ console: { assetsDir: built } });
    const page = await api.request('GET', '/console/', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.text).toBe(PAGE);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it('serves hashed assets as immutable, gzipped for clients that accept it', async () => {
    api = await createTestApp({ console: { assetsDir: built } });
    const plain = await api.request('GET', '/console/assets/index-Ab12Cd34.js', { key: null });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(plain.text).toBe(SCRIPT);

    const zipped = await api.app.request('/console/assets/index-Ab12Cd34.js', { headers: { 'accept-encoding': 'gzip' } });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    const bytes = Buffer.from(await zipped.arrayBuffer());
    expect(bytes.length).toBeLessThan(SCRIPT.length / 4);
    expect(gunzipSync(bytes).toString('utf8')).toBe(SCRIPT);
  });

  it('sends browsers at / and /console to the page, and API clients at / get the JSON 404', async () => {
    api = await createTestApp({ console: { assetsDir: built } });
    const browser = await api.request('GET', '/', { key: null, headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(browser.status).toBe(302);
    expect(browser.headers.get('location')).toBe('/console/');
    const bare = await api.request('GET', '/console', { key: null });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/console/');
    expectError(await api.request('GET', '/', { key: null, headers: { accept: 'application/json' } }), 404, 'RESOURCE_NOT_FOUND', 'Route not found: GET /');
  });

  it('answers 404 for files it does not have, and never reads outside the built folder', async () => {
    api = await createTestApp({ console: { assetsDir: built } });
    expectError(await api.request('GET', '/console/assets/index-OldHash1.js', { key: null }), 404, 'RESOURCE_NOT_FOUND');
    for (const path of ['/console/../bakehouse-console-secret.txt', '/console/%2e%2e/bakehouse-console-secret.txt', '/console/..%2fbakehouse-console-secret.txt']) {
      const answer = await api.request('GET', path, { key: null });
      expect(answer.status, path).toBe(404);
      expect(answer.text, path).not.toContain('not for the web');
    }
  });

  it('says how to build the console when it was never built', async () => {
    api = await createTestApp({ console: { assetsDir: join(built, 'missing') } });
    expectError(await api.request('GET', '/console/', { key: null }), 503, 'UNAVAILABLE', /npm run build:console/);
  });

  it('is absent from an app built without it, such as the tests of other routes', async () => {
    api = await createTestApp();
    expectError(await api.request('GET', '/console/', { key: null }), 404, 'RESOURCE_NOT_FOUND');
  });
});

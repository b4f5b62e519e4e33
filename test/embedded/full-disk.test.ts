/**
 * A full disk answers writes with 507 INSUFFICIENT_STORAGE, whether SQLite (SQLITE_FULL) or a blob
 * write (ENOSPC, EDQUOT) runs out of room, and writes work again once there is room.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { InsufficientStorageError } from '#core/errors.ts';
import { createRepo, createTestApp, expectError, repoPath, type TestApp } from '#test/support/app.ts';

/** The error code the next blob write fails with, as the disk would report it; none when unset. */
const disk = vi.hoisted(() => ({ failWith: undefined as string | undefined }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const writeFile: typeof fs.writeFile = (...args) => {
    if (!disk.failWith) return fs.writeFile(...args);
    return Promise.reject(Object.assign(new Error(`${disk.failWith}: no space left on device, write`), { code: disk.failWith }));
  };
  return { ...fs, default: { ...fs, writeFile }, writeFile };
});

const root = mkdtempSync(join(tmpdir(), 'bakehouse-full-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  disk.failWith = undefined;
});

const FULL_MESSAGE = /no space left.*free disk space/;

/**
 * Caps the database at its current size, as a full disk would. The cap (`max_page_count`) belongs
 * to a connection, so it is set on the store's own.
 */
function capAtCurrentSize(store: SqliteStore, extraPages = 0): void {
  const db = (store as unknown as { db: Database.Database }).db;
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages + extraPages}`);
}

describe('a full disk under SQLite', () => {
  let api: TestApp;
  let store: SqliteStore;
  beforeEach(async () => {
    api = await createTestApp({ store: async () => (store = new SqliteStore(join(root, `${Date.now()}.db`))) });
    await createRepo(api.request, 'r1');
  });
  afterEach(() => api.close());

  it('answers a write that needs more room with 507 in the error shape, and accepts it once there is room', async () => {
    const prompt = { prompt_name: 'long', messages: [{ role: 'system', content: 'a'.repeat(200_000) }] };
    capAtCurrentSize(store);

    const full = await api.request('POST', `${repoPath('r1')}/prompts`, { body: prompt });
    expectError(full, 507, 'INSUFFICIENT_STORAGE', FULL_MESSAGE);
    expect(full.headers.get('x-should-retry')).toBe('true');
    // Reads still work: the database is whole, only full.
    expect((await api.request('GET', repoPath('r1'))).status).toBe(200);

    capAtCurrentSize(store, 1000);
    expect((await api.request('POST', `${repoPath('r1')}/prompts`, { body: prompt })).status).toBe(201);
  });
});

describe('a full disk under LocalBlobs', () => {
  const blobs = () => new LocalBlobs({ root: join(root, 'blobs'), baseUrl: 'http://127.0.0.1:1', signingKey: 'a-signing-key-of-32-characters!!' });

  it.each(['ENOSPC', 'EDQUOT'])('turns %s into InsufficientStorageError and leaves no partial file', async (code) => {
    disk.failWith = code;
    await expect(blobs().put('jobs/1/out.jsonl', 'line\n')).rejects.toThrow(InsufficientStorageError);
    expect(existsSync(join(root, 'blobs', 'jobs', '1', 'out.jsonl'))).toBe(false);
    expect(readdirSync(join(root, 'blobs', '.partial'))).toEqual([]);
  });

  it('passes other write failures on as they are', async () => {
    disk.failWith = 'EACCES';
    await expect(blobs().put('jobs/1/out.jsonl', 'line\n')).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('answers a chat request whose body goes to Blobs with 507 in the OpenAI error shape', async () => {
    const api = await createTestApp();
    try {
      disk.failWith = 'ENOSPC';
      const long = 'word '.repeat(80_000); // above the size kept inline in the Store
      const response = await api.request('POST', '/v1/chat/completions', {
        body: { model: 'bakehouse/toy-instruct', messages: [{ role: 'user', content: long }] },
      });
      expect(response.status, response.text).toBe(507);
      expect(response.body.error).toMatchObject({ code: 'insufficient_storage', type: 'server_error', message: expect.stringMatching(FULL_MESSAGE) });
    } finally {
      await api.close();
    }
  });
});

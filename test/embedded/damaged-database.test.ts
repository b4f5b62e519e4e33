/**
 * A damaged SQLite file: the server refuses to start and says how to restore a backup; damage
 * found while serving gives every request the same 503 and one loud log line.
 */
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DamagedDatabaseError, SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { embeddedDatabaseFile } from '#functions/composition.ts';
import { backupDatabase, defaultBackupFile, restoreCommand } from '#local/backup.ts';
import { startLocalServer } from '#local/server.ts';
import { createRepo, createTestApp, expectError } from '#test/support/app.ts';

const root = mkdtempSync(join(tmpdir(), 'bakehouse-damaged-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PAGE_SIZE = 4096; // SQLite's default, which the store keeps

/** A fresh data dir holding a database of `count` items of about 1 KB (a few hundred pages). */
async function dataDirWithItems(name: string, count = 500): Promise<{ dataDir: string; file: string }> {
  const dataDir = join(root, name);
  mkdirSync(dataDir);
  const file = embeddedDatabaseFile(dataDir);
  const store = new SqliteStore(file);
  for (let i = 0; i < count; i++) await store.put({ pk: 'filler', sk: `item-${i}`, data: 'x'.repeat(1000) });
  await store.close(); // the last connection folds the write-ahead log into the file
  return { dataDir, file };
}

/** Overwrites one page of the file with bytes that are no valid SQLite page. */
function overwritePage(file: string, pageNumber: number): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(PAGE_SIZE, 0xa5), 0, PAGE_SIZE, (pageNumber - 1) * PAGE_SIZE);
  closeSync(fd);
}

const middlePage = (file: string) => Math.floor(statSync(file).size / PAGE_SIZE / 2);

/** Overwrites the 100-byte header that makes the file a SQLite database. */
function overwriteHeader(file: string): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(100, 0xa5), 0, 100, 0);
  closeSync(fd);
}

describe('SqliteStore on a damaged file', () => {
  it('passes its integrity check when the file is sound', async () => {
    const { file } = await dataDirWithItems('sound');
    const store = new SqliteStore(file);
    await expect(store.checkIntegrity()).resolves.toBeUndefined();
    await store.close();
  });

  it('refuses to open a file whose header is overwritten, naming the file', async () => {
    const { file } = await dataDirWithItems('header');
    overwriteHeader(file);
    const opening = (() => {
      try {
        return new SqliteStore(file);
      } catch (error) {
        return error;
      }
    })();
    expect(opening).toBeInstanceOf(DamagedDatabaseError);
    expect(opening).toMatchObject({ file: resolve(file), reason: 'file is not a database', code: 'UNAVAILABLE' });
  });

  it('finds a page overwritten in the middle of the file with its integrity check', async () => {
    const { file } = await dataDirWithItems('middle');
    overwritePage(file, middlePage(file));
    const store = new SqliteStore(file);
    await expect(store.checkIntegrity()).rejects.toThrow(DamagedDatabaseError);
    await store.close();
  });

  it('lets a caller that cannot wait go on, and stops the store when the check then finds damage', async () => {
    const { file } = await dataDirWithItems('late');
    overwritePage(file, middlePage(file));
    const store = new SqliteStore(file);
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await store.checkIntegrity(0); // the worker has not even started by then
      const outcome = () => store.get({ pk: 'filler', sk: 'item-0' }).then(() => 'served', (error: unknown) => error);
      await expect.poll(outcome).toBeInstanceOf(DamagedDatabaseError);
      expect(log).toHaveBeenCalledTimes(1);
    } finally {
      log.mockRestore();
      await store.close();
    }
  });
});

describe('starting the server on a damaged database', () => {
  it('rejects with the damage and stops listening', async () => {
    const { dataDir, file } = await dataDirWithItems('start');
    overwritePage(file, middlePage(file));
    let server: ReturnType<typeof serve> | undefined;
    const starting = startLocalServer({
      port: 0,
      dataDir,
      engineCommand: ['false'],
      serve: (options, listening) => (server = serve(options, listening)),
    });
    await expect(starting).rejects.toMatchObject({ constructor: DamagedDatabaseError, file: resolve(file) });
    expect(server?.listening).toBe(false);
  });

  it('exits non-zero from `npm start` with the file and the command that restores the newest backup', async () => {
    const { dataDir, file } = await dataDirWithItems('npm-start');
    const backup = defaultBackupFile(dataDir);
    await backupDatabase(file, backup);
    overwritePage(file, middlePage(file));

    // --ignore-scripts skips prestart (the project's setup), not the start script itself.
    const run = await promisify(execFile)('npm', ['start', '--silent', '--ignore-scripts'], {
      env: { ...process.env, BAKEHOUSE_DATA_DIR: dataDir, PORT: '0' },
    }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(run.code).not.toBe(0);
    expect(run.stdout).not.toContain('listening');
    expect(run.stderr).toContain(`Bakehouse cannot start: the database ${resolve(file)} is damaged`);
    expect(run.stderr).toContain(restoreCommand(resolve(file), backup));
    expect(run.stderr).not.toMatch(/^\s+at /m); // no stack trace

    // The printed command is the way out: afterwards the database opens, checks and holds its items.
    await promisify(execFile)('bash', ['-c', restoreCommand(resolve(file), backup)]);
    const store = new SqliteStore(file);
    await store.checkIntegrity();
    expect(await store.get({ pk: 'filler', sk: 'item-499' })).toMatchObject({ data: 'x'.repeat(1000) });
    await store.close();
  });
});

describe('damage found while serving', () => {
  /** The page holding the rows inserted last: the rightmost leaf of the items table. */
  function lastItemsPage(file: string): number {
    const db = new Database(file, { readonly: true });
    const { pageno } = db.prepare(`SELECT pageno FROM dbstat WHERE name = 'items' AND pagetype = 'leaf' ORDER BY path DESC LIMIT 1`).get() as {
      pageno: number;
    };
    db.close();
    return pageno;
  }

  it('answers every request with 503 in the error shape and logs the damage once', async () => {
    const file = join(root, 'serving.db');
    const seeding = await createTestApp({ store: async () => new SqliteStore(file) });
    await createRepo(seeding.request, 'early');
    for (let i = 0; i < 40; i++) await createRepo(seeding.request, `late-${i}`);
    await seeding.close();
    overwritePage(file, lastItemsPage(file));

    // The API key's page is sound, so the app starts; the damage shows on the first read of a late repo.
    const api = await createTestApp({ store: async () => new SqliteStore(file) });
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const damaged = await api.request('GET', '/v1/repo/late-39');
      expectError(damaged, 503, 'UNAVAILABLE', /database is damaged.*restore it from a backup/);
      expect(damaged.text).not.toContain(file);
      // Sound pages are not served from a damaged file either: one answer for every request.
      expectError(await api.request('GET', '/v1/repo/early'), 503, 'UNAVAILABLE');
      expectError(await api.request('POST', '/v1/repo', { body: { repo_name: 'new' } }), 503, 'UNAVAILABLE');

      const reports = log.mock.calls.map((args) => String(args[0])).filter((line) => line.includes('is damaged'));
      expect(reports).toHaveLength(1);
      expect(JSON.parse(reports[0]!)).toMatchObject({ level: 'fatal', msg: expect.stringContaining(resolve(file)) });
    } finally {
      log.mockRestore();
      await api.close();
    }
  });
});

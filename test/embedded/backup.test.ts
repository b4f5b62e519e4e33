/**
 * `npm run backup`: SQLite's online backup of the embedded database, consistent while another
 * process keeps writing to it.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { embeddedDatabaseFile } from '#functions/composition.ts';
import { BackupError, backupDatabase, defaultBackupFile, latestBackup } from '#local/backup.ts';

const root = mkdtempSync(join(tmpdir(), 'bakehouse-backup-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The writer's progress and the items it wrote, as one store (or a backup of it) holds them. */
async function writtenState(store: SqliteStore): Promise<{ count: number; items: number }> {
  const counter = await store.get({ pk: 'counter', sk: 'written' });
  const { items } = await store.query({ pk: 'written' });
  return { count: (counter?.count as number | undefined) ?? 0, items: items.length };
}

/** Starts backup-writer.worker.ts on the file; `stop` ends it and gives how many items it wrote. */
function startWriter(file: string): { stop(): Promise<number> } {
  const stopFile = join(root, `stop-${Date.now()}`);
  const worker = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'backup-writer.worker.ts'), file, stopFile]);
  let stdout = '';
  let stderr = '';
  worker.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  worker.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => worker.on('exit', done));
  return {
    async stop() {
      writeFileSync(stopFile, '');
      expect(await exited, stderr).toBe(0);
      return Number(stdout);
    },
  };
}

describe('backupDatabase', () => {
  it('copies a consistent database while another process keeps writing', async () => {
    const dataDir = join(root, 'busy');
    mkdirSync(dataDir);
    const file = embeddedDatabaseFile(dataDir);
    const store = new SqliteStore(file);
    // A few MB, so that each backup copies about a thousand pages.
    for (let i = 0; i < 3000; i++) await store.put({ pk: 'seed', sk: `item-${i}`, data: 's'.repeat(1000) });

    const writer = startWriter(file);
    await expect.poll(async () => (await writtenState(store)).count, { timeout: 20_000 }).toBeGreaterThan(100);
    const backups: { before: number; after: number; copy: { count: number; items: number } }[] = [];
    for (let i = 0; i < 3; i++) {
      const destination = join(root, `busy-${i}.db`);
      const before = (await writtenState(store)).count;
      await backupDatabase(file, destination);
      const after = (await writtenState(store)).count;

      const copy = new SqliteStore(destination);
      await copy.checkIntegrity();
      backups.push({ before, after, copy: await writtenState(copy) });
      expect((await copy.query({ pk: 'seed' })).items).toHaveLength(3000);
      await copy.close();
    }
    const written = await writer.stop();
    await store.close();

    for (const { before, after, copy } of backups) {
      // Every item the counter counts, and no item it does not: one moment of the database.
      expect(copy.items).toBe(copy.count);
      expect(copy.count).toBeGreaterThanOrEqual(before);
      expect(copy.count).toBeLessThanOrEqual(after);
    }
    // The writer really was writing throughout.
    expect(backups.at(-1)!.copy.count).toBeGreaterThan(backups[0]!.copy.count);
    expect(written).toBeGreaterThan(backups.at(-1)!.copy.count);
  });

  it('refuses to overwrite a file, and to copy a database that is not there', async () => {
    const dataDir = join(root, 'refusals');
    mkdirSync(dataDir);
    const file = embeddedDatabaseFile(dataDir);
    await expect(backupDatabase(file, join(root, 'none.db'))).rejects.toThrow(BackupError);
    const store = new SqliteStore(file);
    await store.close();
    const taken = join(root, 'taken.db');
    writeFileSync(taken, 'keep me');
    await expect(backupDatabase(file, taken)).rejects.toThrow(/already exists/);
  });
});

describe('npm run backup', () => {
  it('writes a checked, timestamped backup under <data dir>/backups by default', async () => {
    const dataDir = join(root, 'cli');
    mkdirSync(dataDir);
    const store = new SqliteStore(embeddedDatabaseFile(dataDir));
    await store.put({ pk: 'p', sk: 's', kept: true });

    const { stdout } = await promisify(execFile)('npm', ['run', '--silent', 'backup'], { env: { ...process.env, BAKEHOUSE_DATA_DIR: dataDir } });
    await store.close();
    const backup = latestBackup(dataDir)!;
    expect(backup).toMatch(/\/backups\/bakehouse-\d{8}T\d{6}Z\.db$/);
    expect(readdirSync(join(dataDir, 'backups'))).toHaveLength(1); // no partial file left over
    expect(stdout).toContain(`to ${backup}`);
    expect(stdout).toContain(join(dataDir, 'blobs'));

    const copy = new SqliteStore(backup);
    expect(await copy.get({ pk: 'p', sk: 's' })).toEqual({ pk: 'p', sk: 's', kept: true });
    await copy.close();
  });

  it('names backups so that the newest sorts last', () => {
    const dataDir = join(root, 'names');
    expect(defaultBackupFile(dataDir, new Date('2026-01-02T03:04:05.678Z'))).toBe(join(dataDir, 'backups', 'bakehouse-20260102T030405Z.db'));
    expect(existsSync(join(dataDir, 'backups'))).toBe(false);
    expect(latestBackup(dataDir)).toBeUndefined();
  });
});

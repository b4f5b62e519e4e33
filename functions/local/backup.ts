/**
 * Backup and restore of the embedded runtime's database.
 *
 * `npm run backup [-- <file>]` copies the SQLite database with SQLite's online backup while the
 * server keeps running, checks the copy and only then gives it its name. Without a file it writes
 * `<data dir>/backups/bakehouse-<UTC time>.db` (BAKEHOUSE_DATA_DIR, default ./.data).
 *
 * The backup holds the database only. Job outputs and checkpoints are files under
 * `<data dir>/blobs`: a copy of that folder taken after the database backup holds every blob the
 * backup refers to (README.md, "Backup and restore").
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { embeddedDatabaseFile } from '#functions/composition.ts';
import { DEFAULT_DATA_DIR } from './server.ts';

const BACKUP_NAME = /^bakehouse-\d{8}T\d{6}Z\.db$/;

/** Pages per backup step: all of them, see `backupDatabase`. */
const ALL_PAGES = 0x7fffffff;

export class BackupError extends Error {}

/** `<data dir>/backups/bakehouse-20260102T030405Z.db`: names sort by time. */
export function defaultBackupFile(dataDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return join(resolve(dataDir), 'backups', `bakehouse-${stamp}.db`);
}

/** The newest backup `npm run backup` wrote to its default place, if any. */
export function latestBackup(dataDir: string): string | undefined {
  const dir = join(resolve(dataDir), 'backups');
  if (!existsSync(dir)) return undefined;
  const newest = readdirSync(dir).filter((name) => BACKUP_NAME.test(name)).sort().at(-1);
  return newest && join(dir, newest);
}

/**
 * Copies the database at `databaseFile` to `destination` (which must not exist yet) while other
 * connections keep writing, and checks the copy with `quick_check`. Returns the pages copied.
 */
export async function backupDatabase(databaseFile: string, destination: string): Promise<number> {
  if (!existsSync(databaseFile)) throw new BackupError(`No database at ${databaseFile}: set BAKEHOUSE_DATA_DIR to the server's data dir.`);
  if (existsSync(destination)) throw new BackupError(`${destination} already exists; name a new file for the backup.`);
  mkdirSync(dirname(destination), { recursive: true });
  // Written under another name first, so that a backup cut short is never taken for a good one.
  const partial = `${destination}.partial`;
  rmSync(partial, { force: true });

  const source = new Database(databaseFile, { fileMustExist: true, timeout: 5_000 });
  let pages: number;
  try {
    // One step copies every page inside one read transaction: a consistent snapshot, taken while
    // the server keeps writing (in WAL mode readers do not block writers). Small steps would start
    // over whenever another process wrote between them, and might never finish on a busy server.
    ({ totalPages: pages } = await source.backup(partial, { progress: () => ALL_PAGES }));
  } finally {
    source.close();
  }

  const verdict = quickCheck(partial);
  if (verdict !== 'ok') {
    rmSync(partial, { force: true });
    throw new BackupError(`The database ${databaseFile} is damaged (${verdict}); a copy of it would be too. Keep the backups you have.`);
  }
  renameSync(partial, destination);
  return pages;
}

/** SQLite's `quick_check` verdict on a file: `ok`, or what is wrong. */
function quickCheck(file: string): string {
  // Read-write although it only reads: closing the last read-write connection removes the
  // write-ahead log files that opening a WAL database creates.
  const db = new Database(file, { fileMustExist: true });
  try {
    return db.pragma('quick_check(1)', { simple: true }) as string;
  } catch (error) {
    return (error as Error).message;
  } finally {
    db.close();
  }
}

/** The shell command that puts `backupFile` in place of `databaseFile` (with the server stopped). */
export function restoreCommand(databaseFile: string, backupFile: string): string {
  // A write-ahead log left by the damaged database would be replayed onto the backup.
  const quoted = [`${databaseFile}-wal`, `${databaseFile}-shm`, backupFile, databaseFile].map(shellQuote);
  return `rm -f ${quoted[0]} ${quoted[1]} && cp ${quoted[2]} ${quoted[3]}`;
}

/** What the operator reads when the server cannot start on a damaged database. */
export function damagedDatabaseAdvice(databaseFile: string, reason: string, dataDir: string): string {
  const backup = latestBackup(dataDir);
  const lines = [`Bakehouse cannot start: the database ${databaseFile} is damaged (${reason}).`];
  if (backup) {
    lines.push(`Restore the newest backup, ${backup}, and start again:`, `  ${restoreCommand(databaseFile, backup)}`);
  } else {
    lines.push(
      `No backup was found in ${join(resolve(dataDir), 'backups')}. Restore one you keep elsewhere, and start again:`,
      `  ${restoreCommand(databaseFile, '<backup file>')}`,
      `Or, to start over with an empty database, move the damaged one aside: mv ${shellQuote(databaseFile)} ${shellQuote(`${databaseFile}.damaged`)}`,
    );
  }
  return lines.join('\n');
}

/** Single-quotes a path for the shell unless it needs none. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<void> {
  const dataDir = resolve(process.env.BAKEHOUSE_DATA_DIR ?? DEFAULT_DATA_DIR);
  const databaseFile = embeddedDatabaseFile(dataDir);
  const destination = resolve(process.argv[2] ?? defaultBackupFile(dataDir));
  const pages = await backupDatabase(databaseFile, destination);
  console.log(`Backed up ${databaseFile} to ${destination} (${pages} pages, checked).`);
  console.log(`Job outputs and checkpoints are not in it: copy ${join(dataDir, 'blobs')} too (README.md, "Backup and restore").`);
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  main().catch((error: unknown) => {
    console.error(error instanceof BackupError ? error.message : error);
    process.exit(1);
  });
}

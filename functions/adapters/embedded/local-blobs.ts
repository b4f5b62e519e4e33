/**
 * LocalBlobs: the Blobs port on a directory, for the embedded runtime.
 *
 * A key is a file path under the root (blob-keys.ts keeps keys from escaping it). Writes go to a
 * temporary file in `<root>/.partial/` and are renamed into place, so a reader (or the engine)
 * never sees half a blob. Ranges are read through a file handle, never by reading the whole file.
 *
 * Presigned URLs point at the local app's `GET /v1/blobs/{key}` (functions/http/routes/blobs.ts)
 * and carry an expiry and an HMAC-SHA256 signature over the key and that expiry.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { InsufficientStorageError } from '#core/errors.ts';
import type { BlobRange, Blobs } from '#ports/blobs.ts';
import { systemClock, type Clock } from '#ports/clock.ts';
import {
  assertBlobKey,
  assertBlobPrefix,
  assertBlobRange,
  assertPresignExpiry,
  compareKeys,
  InvalidBlobKeyError,
  MAX_PRESIGN_SECONDS,
} from '../blob-keys.ts';

/** Where writes are staged before their rename; not a key (a key may not start with it). */
const PARTIAL_DIR = '.partial';
/** Files unlinked at once by deletePrefix. */
const DELETE_CONCURRENCY = 32;

export interface LocalBlobsOptions {
  /** The directory holding the blobs; created when missing. */
  root: string;
  /** The local app's origin, e.g. `http://127.0.0.1:8080`; presigned URLs start with it. */
  baseUrl: string;
  /** Secret for the URL signatures; the serving route must be given the same one. */
  signingKey: string | Uint8Array;
  clock?: Clock;
}

/** An open blob for streaming: the bytes [start, end) of a blob of `size` bytes. */
export interface BlobStream {
  size: number;
  start: number;
  end: number;
  body: ReadableStream<Uint8Array>;
}

export class LocalBlobs implements Blobs {
  readonly root: string;
  private readonly baseUrl: string;
  private readonly signingKey: string | Uint8Array;
  private readonly clock: Clock;

  constructor({ root, baseUrl, signingKey, clock = systemClock }: LocalBlobsOptions) {
    if (!signingKey || signingKey.length < 16) throw new Error('LocalBlobs needs a signing key of at least 16 bytes');
    this.root = resolve(root);
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.signingKey = signingKey;
    this.clock = clock;
  }

  async put(key: string, body: Uint8Array | string, _contentType?: string): Promise<void> {
    const path = this.pathFor(key);
    const partialDir = join(this.root, PARTIAL_DIR);
    const partial = join(partialDir, `${randomBytes(12).toString('hex')}.partial`);
    try {
      await Promise.all([mkdir(partialDir, { recursive: true }), mkdir(dirname(path), { recursive: true })]);
      await writeFile(partial, body);
      await rename(partial, path);
    } catch (error) {
      await rm(partial, { force: true });
      throw isDiskFull(error) ? new InsufficientStorageError() : error;
    }
  }

  async get(key: string, range?: BlobRange): Promise<Uint8Array | undefined> {
    const opened = await this.openRange(key, range);
    if (!opened) return undefined;
    const { handle, start, end } = opened;
    try {
      const bytes = new Uint8Array(end - start);
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, start + filled);
        if (bytesRead === 0) break; // truncated while reading
        filled += bytesRead;
      }
      return filled === bytes.length ? bytes : bytes.subarray(0, filled);
    } finally {
      await handle.close();
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const stats = await stat(this.pathFor(key));
      return stats.isFile() ? stats.size : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertBlobPrefix(prefix);
    // Walk only the directory the prefix points into: `jobs/1` → jobs/, names starting with `1`.
    const slash = prefix.lastIndexOf('/');
    const dirKey = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    const keys: string[] = [];
    await this.walk(join(this.root, dirKey), dirKey, namePrefix, keys);
    return keys.sort(compareKeys);
  }

  async deletePrefix(prefix: string): Promise<void> {
    if (prefix === '') throw new InvalidBlobKeyError('Refusing to delete every blob: deletePrefix needs a non-empty prefix');
    const keys = await this.list(prefix);
    for (let i = 0; i < keys.length; i += DELETE_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + DELETE_CONCURRENCY).map((key) =>
          unlink(join(this.root, key)).catch((error: unknown) => {
            if (!isMissing(error)) throw error;
          }),
        ),
      );
    }
    await this.pruneEmptyDirs(keys);
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    assertBlobKey(key);
    assertPresignExpiry(expiresInSeconds);
    const expires = Math.floor(this.clock.now().getTime() / 1000) + expiresInSeconds;
    const signature = blobSignature(key, expires, this.signingKey);
    return `${this.baseUrl}/v1/blobs/${encodeBlobKey(key)}?expires=${expires}&signature=${signature}`;
  }

  /**
   * Opens the blob and clamps the range [start, end) to its size, or undefined when missing. The
   * caller closes the handle.
   */
  private async openRange(key: string, range?: BlobRange): Promise<{ handle: FileHandle; size: number; start: number; end: number } | undefined> {
    const wanted = range ? assertBlobRange(range) : true;
    const handle = await openFile(this.pathFor(key));
    if (!handle) return undefined;
    try {
      const size = (await handle.stat()).size;
      const start = Math.min(range?.start ?? 0, size);
      const end = wanted ? Math.min(range?.end ?? size, size) : start;
      return { handle, size, start, end };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  uriFor(key: string): string {
    // A prefix (ending in `/`) is addressable too: the engine is given its output prefix.
    const path = key.endsWith('/') ? `${this.pathForPrefix(key)}/` : this.pathFor(key);
    return pathToFileURL(path).href;
  }

  /**
   * Opens the bytes [start, end) for streaming (the route serves presigned URLs with this), or
   * undefined when missing. The stream owns the file handle and closes it when done or cancelled.
   */
  async openRead(key: string, range?: BlobRange): Promise<BlobStream | undefined> {
    const opened = await this.openRange(key, range);
    if (!opened) return undefined;
    const { handle, size, start, end } = opened;
    try {
      if (end === start) {
        await handle.close();
        return { size, start, end, body: new ReadableStream({ start: (controller) => controller.close() }) };
      }
      // createReadStream's `end` is inclusive.
      const stream = handle.createReadStream({ start, end: end - 1, autoClose: true });
      return { size, start, end, body: Readable.toWeb(stream) as ReadableStream<Uint8Array> };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The file for a key; throws InvalidBlobKeyError for keys that could leave the root. */
  pathFor(key: string): string {
    assertBlobKey(key);
    return this.resolveInside(key);
  }

  private pathForPrefix(prefix: string): string {
    assertBlobPrefix(prefix);
    return this.resolveInside(prefix.replace(/\/$/, ''));
  }

  private resolveInside(relative: string): string {
    if (relative.split('/')[0] === PARTIAL_DIR) {
      throw new InvalidBlobKeyError(`Blob keys may not start with ${PARTIAL_DIR}/ (reserved for writes in progress)`);
    }
    const path = resolve(this.root, relative);
    // The key rules already exclude `..`; this is the belt to their braces.
    if (path !== this.root && !path.startsWith(this.root + sep)) {
      throw new InvalidBlobKeyError(`Blob key ${JSON.stringify(relative)} resolves outside the blob root`);
    }
    return path;
  }

  private async walk(dir: string, dirKey: string, namePrefix: string, keys: string[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw error;
    }
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix)) continue;
      if (dirKey === '' && entry.name === PARTIAL_DIR) continue;
      const key = dirKey + entry.name;
      if (entry.isDirectory()) await this.walk(join(dir, entry.name), `${key}/`, '', keys);
      else if (entry.isFile()) keys.push(key);
    }
  }

  /** Removes directories left empty by a delete, deepest first, never the root. */
  private async pruneEmptyDirs(keys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const parts = key.split('/');
      for (let i = parts.length - 1; i > 0; i--) dirs.add(parts.slice(0, i).join('/'));
    }
    const deepestFirst = [...dirs].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const dir of deepestFirst) {
      await rmdir(join(this.root, dir)).catch(() => {}); // not empty, or already gone
    }
  }
}

/** `jobs/1/a b.txt` → `jobs/1/a%20b.txt`: each segment encoded, the slashes kept. */
export function encodeBlobKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** Hex HMAC-SHA256 of `key \n expires`; expires cannot contain a newline, so the split is unique. */
export function blobSignature(key: string, expires: number, signingKey: string | Uint8Array): string {
  return createHmac('sha256', signingKey).update(`${key}\n${expires}`).digest('hex');
}

export type BlobSignatureCheck = 'valid' | 'missing' | 'invalid' | 'expired';

/**
 * Checks a presigned blob URL's query values: `valid`, or why not. The signature is checked
 * before the expiry, so a forged URL reads as `invalid` whatever expiry it claims.
 */
export function verifyBlobSignature(
  key: string,
  expires: string | undefined,
  signature: string | undefined,
  signingKey: string | Uint8Array,
  now: Date,
): BlobSignatureCheck {
  if (!expires || !signature) return 'missing';
  if (!/^\d{1,12}$/.test(expires) || !/^[0-9a-f]{64}$/.test(signature)) return 'invalid';
  const expected = Buffer.from(blobSignature(key, Number(expires), signingKey), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) return 'invalid';
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (nowSeconds > Number(expires)) return 'expired';
  // Only this server signs, and never further ahead than the port allows.
  if (Number(expires) - nowSeconds > MAX_PRESIGN_SECONDS) return 'invalid';
  return 'valid';
}

async function openFile(path: string): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  // A directory opens fine on Linux; it is a prefix, not a blob.
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    return undefined;
  }
  return handle;
}

/** No room left: the disk is full (ENOSPC) or the user's quota is spent (EDQUOT). */
function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

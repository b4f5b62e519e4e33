/**
 * One gzipped tarball of a checkpoint's files, for clients that download a checkpoint as a single
 * archive (Tinker's `…/checkpoints/{id}/archive`, loops-api.md §2.6). It is built on the first
 * request and stored beside the files, named by the save it packs, so a later save under the same
 * name gets a new archive and a stale one is never handed out; deleting the checkpoint's prefix
 * deletes it with the files.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { pack } from 'tar-stream';
import type { Blobs } from '../../ports/blobs.ts';
import { checkpointPrefix } from './checkpoint-paths.ts';
import type { TrainingCheckpoint } from './model.ts';

const gzipped = promisify(gzip);

export function archiveKey(checkpoint: TrainingCheckpoint): string {
  return `${checkpointPrefix(checkpoint)}.archive/${Date.parse(checkpoint.createdAt)}.tar.gz`;
}

/** The archive's blob key, building and storing the archive first when this save has none yet. */
export async function ensureArchive(blobs: Blobs, checkpoint: TrainingCheckpoint): Promise<string> {
  const key = archiveKey(checkpoint);
  if ((await blobs.size(key)) !== undefined) return key;
  const prefix = checkpointPrefix(checkpoint);
  const tarball = pack();
  const chunks: Buffer[] = [];
  tarball.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    tarball.on('end', resolve);
    tarball.on('error', reject);
  });
  const mtime = new Date(checkpoint.createdAt);
  // LoRA adapters are megabytes, so the archive is built in memory.
  for (const file of [...checkpoint.files].sort((a, b) => a.name.localeCompare(b.name))) {
    const bytes = await blobs.get(`${prefix}${file.name}`);
    if (!bytes) throw new Error(`File ${file.name} of checkpoint ${checkpoint.id} is missing from Blobs`);
    tarball.entry({ name: file.name, size: bytes.byteLength, mtime, mode: 0o644 }, Buffer.from(bytes));
  }
  tarball.finalize();
  await ended;
  await blobs.put(key, await gzipped(Buffer.concat(chunks)), 'application/gzip');
  return key;
}

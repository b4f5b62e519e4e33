/**
 * One of several processes racing on one SQLite file (see store.test.ts):
 * `node --import tsx sqlite-store.worker.ts <db> <id> <keys> <barrierDir> <processes>`.
 * Waits until every process is ready (a file each in barrierDir), so their writes overlap however
 * slowly they start; then tries to create every key, bumps a shared counter per key, and prints
 * the keys it won as JSON.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ConditionFailedError } from '#ports/store.ts';

const [path, id, keys, barrierDir, processes] = process.argv.slice(2);
const store = new SqliteStore(path!);
writeFileSync(join(barrierDir!, `ready-${id}`), '');
while (readdirSync(barrierDir!).length < Number(processes)) await new Promise((resolve) => setTimeout(resolve, 1));

const won: string[] = [];
const total = Number(keys);
// Each process starts at its own point in the key space, so it meets the others' keys midway
// even if it happens to start a little earlier.
const start = Math.floor((Number(id) * total) / Number(processes));
for (let i = 0; i < total; i++) {
  const sk = `k${(start + i) % total}`;
  try {
    await store.put({ pk: 'race', sk, owner: Number(id) }, { exists: false });
    won.push(sk);
  } catch (error) {
    if (!(error instanceof ConditionFailedError)) throw error;
  }
  await store.update({ pk: 'counter', sk: 'x' }, { add: { count: 1 } });
}
await store.close();
process.stdout.write(JSON.stringify(won));

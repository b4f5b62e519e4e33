/**
 * One of several processes opening the same fresh SQLite files at the same moments (see
 * store.test.ts): `node --import tsx sqlite-open.worker.ts <dir> <files> <startAtMs>`. File i of
 * `dir` is opened at `startAtMs` + i × 250 ms by every process (the clock keeps them in step), and
 * each writes one item to it and closes it.
 */
import { join } from 'node:path';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';

const [dir, files, startAt] = process.argv.slice(2);
for (let file = 0; file < Number(files); file++) {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) + file * 250 - Date.now())));
  const store = new SqliteStore(join(dir!, `fresh-${file}.db`));
  await store.put({ pk: 'opened', sk: String(process.pid) });
  await store.close();
}

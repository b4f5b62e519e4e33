/**
 * Writes to a SQLite store from its own process while backup.test.ts backs it up:
 * `node --import tsx backup-writer.worker.ts <db> <stopFile>`. Each transaction adds one item and
 * sets the counter to the number of items, so a consistent copy has exactly `count` items.
 * Prints how many it wrote once stopFile exists.
 */
import { existsSync } from 'node:fs';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';

const [path, stopFile] = process.argv.slice(2);
const store = new SqliteStore(path!);
let count = 0;
while (!existsSync(stopFile!)) {
  count++;
  await store.transact([
    { kind: 'put', item: { pk: 'written', sk: `item-${String(count).padStart(8, '0')}`, data: 'w'.repeat(500) } },
    { kind: 'update', key: { pk: 'counter', sk: 'written' }, update: { set: { count } } },
  ]);
}
await store.close();
process.stdout.write(String(count));

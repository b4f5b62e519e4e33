/**
 * One of several processes racing on one SQLite file (see store.test.ts):
 * `node --import tsx sqlite-store.worker.ts <db> <id> <keys> <startAt>`.
 * Tries to create every key, bumps a shared counter per key, prints the keys it won as JSON.
 */
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ConditionFailedError } from '#ports/store.ts';

const [path, id, keys, startAt] = process.argv.slice(2);
const store = new SqliteStore(path!);
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));

const won: string[] = [];
for (let k = 0; k < Number(keys); k++) {
  const sk = `k${k}`;
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

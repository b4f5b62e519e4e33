import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ConditionFailedError } from '#ports/store.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { describeStoreContract } from './store.contract.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-store-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describeStoreContract('SqliteStore', async () => new SqliteStore(join(dataDir, 'contract.db')));
describeStoreContract('DynamoDbStore (DynamoDB Local)', createDynamoTestStore);

describe('SqliteStore sharing one file', () => {
  it('works in memory too', async () => {
    const store = new SqliteStore(':memory:');
    await store.put({ pk: 'p', sk: 's', a: 1 }, { exists: false });
    expect(await store.get({ pk: 'p', sk: 's' })).toEqual({ pk: 'p', sk: 's', a: 1 });
    await store.close();
  });

  it('keeps conditional creates exclusive across two handles on the same file', async () => {
    const path = join(dataDir, 'two-handles.db');
    const [a, b] = [new SqliteStore(path), new SqliteStore(path)];
    const key = { pk: 'race', sk: 'x' };
    const results = await Promise.allSettled(
      Array.from({ length: 32 }, (_, i) => (i % 2 ? a : b).put({ ...key, owner: i }, { exists: false })),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(ConditionFailedError);
    }
    expect(await a.get(key)).toEqual(await b.get(key));
    await Promise.all([a.close(), b.close()]);
  });

  it('lets several processes set up the same fresh files at the same moments', async () => {
    const worker = join(import.meta.dirname, 'sqlite-open.worker.ts');
    const dir = mkdtempSync(join(dataDir, 'open-'));
    const [processes, files] = [6, 20];
    const startAt = String(Date.now() + 4_000); // after every process has loaded
    const runs = await Promise.allSettled(Array.from({ length: processes }, () => promisify(execFile)(process.execPath, ['--import', 'tsx', worker, dir, String(files), startAt])));
    expect(runs.flatMap((run) => (run.status === 'rejected' ? [String(run.reason)] : []))).toEqual([]);
    for (let file = 0; file < files; file++) {
      const store = new SqliteStore(join(dir, `fresh-${file}.db`));
      expect((await store.query({ pk: 'opened' })).items).toHaveLength(processes);
      await store.close();
    }
  }, 60_000);

  it('keeps conditional creates exclusive and counters exact across processes', async () => {
    const path = join(dataDir, 'processes.db');
    const worker = join(import.meta.dirname, 'sqlite-store.worker.ts');
    const processes = 4;
    const keys = 1000;
    // A start barrier makes the processes' writes overlap instead of running one after another.
    const barrierDir = mkdtempSync(join(dataDir, 'barrier-'));
    const runs = await Promise.all(
      Array.from({ length: processes }, (_, id) => {
        const args = [worker, path, String(id), String(keys), barrierDir, String(processes)];
        return promisify(execFile)(process.execPath, ['--import', 'tsx', ...args]);
      }),
    );
    const wins = runs.flatMap(({ stdout }) => JSON.parse(stdout) as string[]);
    expect(wins).toHaveLength(keys);
    expect(new Set(wins).size).toBe(keys);

    const store = new SqliteStore(path);
    expect(await store.get({ pk: 'counter', sk: 'x' })).toMatchObject({ count: processes * keys });
    const owners = (await store.query({ pk: 'race' })).items.map((item) => item.owner);
    expect(new Set(owners).size).toBeGreaterThan(1); // the processes really did interleave
    await store.close();
  });
});

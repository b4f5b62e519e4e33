/**
 * The Store contract: what every adapter must do, run against each of them (store.test.ts).
 * Each test works in its own fresh partition, so one store serves the whole suite.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConditionFailedError,
  TransactionFailedError,
  type Item,
  type QueryInput,
  type Scalar,
  type Store,
} from '#ports/store.ts';

const HOUR = 3600;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const past = () => nowSeconds() - HOUR;
const future = () => nowSeconds() + HOUR;

export function describeStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await makeStore();
    });
    afterAll(async () => {
      await store?.close();
    });

    const partition = (label: string) => `${label}#${randomUUID()}`;

    /** Reads every page, checking page sizes: full pages, then at most one short (maybe empty) one. */
    async function readPages(input: QueryInput): Promise<Item[][]> {
      const pages: Item[][] = [];
      let cursor: string | undefined;
      do {
        const page = await store.query({ ...input, cursor });
        pages.push(page.items);
        cursor = page.cursor;
        if (cursor) expect(page.items).toHaveLength(input.limit!);
        expect(pages.length).toBeLessThan(1000);
      } while (cursor);
      return pages;
    }

    async function transactError(promise: Promise<void>): Promise<TransactionFailedError> {
      const error: unknown = await promise.then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(TransactionFailedError);
      return error as TransactionFailedError;
    }

    const sks = (items: Item[]) => items.map((item) => item.sk);

    describe('get and put', () => {
      it('round-trips nested JSON and replaces the whole item on put', async () => {
        const pk = partition('json');
        const item: Item = {
          pk,
          sk: 'item',
          text: 'ünïcødé ✓ 😀',
          empty: '',
          count: 3,
          ratio: 0.25,
          negative: -7,
          flag: false,
          nothing: null,
          list: [1, 'two', { three: [3] }, null, true],
          nested: { a: { b: { c: 'deep' } }, emptyList: [], emptyMap: {} },
        };
        await store.put(item);
        expect(await store.get({ pk, sk: 'item' })).toEqual(item);

        await store.put({ pk, sk: 'item', other: 1 });
        expect(await store.get({ pk, sk: 'item' })).toEqual({ pk, sk: 'item', other: 1 });
      });

      it('returns undefined for a missing item', async () => {
        expect(await store.get({ pk: partition('missing'), sk: 'nothing' })).toBeUndefined();
      });
    });

    describe('conditions', () => {
      it('exists: false creates once, then fails with ConditionFailedError and changes nothing', async () => {
        const key = { pk: partition('create'), sk: 'once' };
        await store.put({ ...key, owner: 'first' }, { exists: false });

        const error: unknown = await store.put({ ...key, owner: 'second' }, { exists: false }).catch((e) => e);
        expect(error).toBeInstanceOf(ConditionFailedError);
        expect((error as ConditionFailedError).key).toEqual(key);
        expect(await store.get(key)).toEqual({ ...key, owner: 'first' });
      });

      it('exists: true requires a stored item', async () => {
        const key = { pk: partition('exists'), sk: 'x' };
        await expect(store.put({ ...key, v: 1 }, { exists: true })).rejects.toBeInstanceOf(ConditionFailedError);
        expect(await store.get(key)).toBeUndefined();

        await store.put({ ...key, v: 1 });
        await store.put({ ...key, v: 2 }, { exists: true });
        expect(await store.get(key)).toEqual({ ...key, v: 2 });
      });

      it('equals compares top-level scalars and implies the item exists', async () => {
        const key = { pk: partition('equals'), sk: 'x' };
        await expect(store.put({ ...key }, { equals: { status: 'draft' } })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );

        await store.put({ ...key, status: 'draft', version: 1, flag: true, nothing: null });
        await store.put(
          { ...key, status: 'queued', version: 2, flag: true, nothing: null },
          { equals: { status: 'draft', version: 1, flag: true, nothing: null } },
        );
        const stale: Record<string, Scalar>[] = [
          { status: 'draft' },
          { version: 1 },
          { flag: false },
          { absent: null },
          { absent: 'x' },
        ];
        for (const equals of stale) {
          await expect(store.put({ ...key, status: 'lost' }, { equals })).rejects.toBeInstanceOf(ConditionFailedError);
        }
        expect(await store.get(key)).toMatchObject({ status: 'queued', version: 2 });
      });

      it('absent requires the named attributes to be missing and implies the item exists', async () => {
        const key = { pk: partition('absent'), sk: 'x' };
        await expect(store.put({ ...key, a: 1 }, { absent: ['a'] })).rejects.toBeInstanceOf(ConditionFailedError);
        await store.put({ ...key, a: 1 });
        await store.update(key, { set: { b: 2 }, condition: { absent: ['b', 'c'] } });
        await expect(store.update(key, { set: { b: 3 }, condition: { absent: ['b'] } })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        await expect(store.put({ ...key, a: 9 }, { absent: ['a'] })).rejects.toBeInstanceOf(ConditionFailedError);
        expect(await store.get(key)).toMatchObject({ a: 1, b: 2 });
      });

      it('oneOf accepts any listed value and implies the item exists', async () => {
        const key = { pk: partition('oneof'), sk: 'x' };
        const oneOf = { status: ['draft', 'queued'] };
        await expect(store.put({ ...key, status: 'x' }, { oneOf })).rejects.toBeInstanceOf(ConditionFailedError);

        await store.put({ ...key, status: 'queued' });
        await store.put({ ...key, status: 'running' }, { oneOf });
        await expect(store.put({ ...key, status: 'done' }, { oneOf })).rejects.toBeInstanceOf(ConditionFailedError);
        await expect(store.put({ ...key, status: 'done' }, { oneOf: { status: [] } })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        await store.put({ ...key, status: 'done' }, { exists: true, oneOf: { status: ['running', 'x'] } });
        expect(await store.get(key)).toEqual({ ...key, status: 'done' });
      });
    });

    describe('update', () => {
      it('applies set, remove and add, and returns the item as stored', async () => {
        const key = { pk: partition('update'), sk: 'x' };
        await store.put({ ...key, a: 1, b: 'gone', n: 10, keep: true });
        const updated = await store.update(key, {
          set: { a: 2, c: { nested: [1, { d: 'e' }] } },
          remove: ['b'],
          add: { n: 5, m: -2 },
        });
        expect(updated).toEqual({ ...key, a: 2, c: { nested: [1, { d: 'e' }] }, n: 15, m: -2, keep: true });
        expect(await store.get(key)).toEqual(updated);
      });

      it('counts from zero on a missing item (upsert by default)', async () => {
        const key = { pk: partition('counter'), sk: 'x' };
        expect(await store.update(key, { add: { count: 1 } })).toEqual({ ...key, count: 1 });
        expect(await store.update(key, { add: { count: 1 } })).toEqual({ ...key, count: 2 });
      });

      it('upsert: false fails on a missing item and creates nothing', async () => {
        const key = { pk: partition('noupsert'), sk: 'x' };
        await expect(store.update(key, { set: { a: 1 }, upsert: false })).rejects.toBeInstanceOf(ConditionFailedError);
        expect(await store.get(key)).toBeUndefined();

        await store.put({ ...key, a: 0 });
        expect(await store.update(key, { set: { a: 1 }, upsert: false })).toEqual({ ...key, a: 1 });
      });

      it('leaves the item unchanged when its condition fails', async () => {
        const key = { pk: partition('condupdate'), sk: 'x' };
        const original = { ...key, version: 1, value: 'a' };
        await store.put(original);
        await expect(
          store.update(key, { set: { value: 'b' }, add: { version: 1 }, condition: { equals: { version: 2 } } }),
        ).rejects.toBeInstanceOf(ConditionFailedError);
        expect(await store.get(key)).toEqual(original);

        const updated = await store.update(key, {
          set: { value: 'b' },
          add: { version: 1 },
          condition: { equals: { version: 1 } },
        });
        expect(updated).toEqual({ ...key, version: 2, value: 'b' });
      });

      it('creates under exists: false', async () => {
        const key = { pk: partition('createupdate'), sk: 'x' };
        await store.update(key, { set: { a: 1 }, condition: { exists: false } });
        await expect(store.update(key, { set: { a: 2 }, condition: { exists: false } })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        expect(await store.get(key)).toEqual({ ...key, a: 1 });
      });

      it('keeps the secondary index in step with set and remove', async () => {
        const key = { pk: partition('gsiupdate'), sk: 'x' };
        const gsi1pk = partition('gsi');
        await store.put({ ...key });
        await store.update(key, { set: { gsi1pk, gsi1sk: 'one' } });
        expect((await store.query({ index: 'gsi1', pk: gsi1pk })).items).toEqual([{ ...key, gsi1pk, gsi1sk: 'one' }]);

        await store.update(key, { remove: ['gsi1pk', 'gsi1sk'] });
        expect((await store.query({ index: 'gsi1', pk: gsi1pk })).items).toEqual([]);
      });

      it('refuses to change the key attributes', async () => {
        const key = { pk: partition('keyupdate'), sk: 'x' };
        await store.put({ ...key });
        await expect(store.update(key, { set: { sk: 'y' } })).rejects.toThrow();
        expect(await store.get(key)).toEqual(key);
      });
    });

    it('takes attribute names literally (reserved words, dots, dashes, #)', async () => {
      const key = { pk: partition('names'), sk: 'x' };
      const odd = { status: 'new', name: 'n', data: 1, 'a.b': 2, 'x-y': 3, '#z': 4, ':v': 5 };
      await store.put({ ...key, ...odd }, { exists: false });
      const updated = await store.update(key, {
        set: { status: 'done', 'a.b': 20 },
        remove: ['x-y'],
        add: { data: 1, '#z': 1 },
        condition: { equals: { status: 'new', 'a.b': 2, ':v': 5 }, oneOf: { name: ['n'], '#z': [4] } },
      });
      expect(updated).toEqual({ ...key, status: 'done', name: 'n', data: 2, 'a.b': 20, '#z': 5, ':v': 5 });
      expect(await store.delete(key, { equals: { 'a.b': 20 } })).toEqual(updated);
    });

    describe('delete', () => {
      it('returns the item it removed, or undefined', async () => {
        const key = { pk: partition('delete'), sk: 'x' };
        await store.put({ ...key, a: { b: 1 } });
        expect(await store.delete(key)).toEqual({ ...key, a: { b: 1 } });
        expect(await store.get(key)).toBeUndefined();
        expect(await store.delete(key)).toBeUndefined();
      });

      it('honours its condition', async () => {
        const key = { pk: partition('conddelete'), sk: 'x' };
        await expect(store.delete(key, { exists: true })).rejects.toBeInstanceOf(ConditionFailedError);
        await store.put({ ...key, status: 'running' });
        await expect(store.delete(key, { equals: { status: 'done' } })).rejects.toBeInstanceOf(ConditionFailedError);
        expect(await store.get(key)).toEqual({ ...key, status: 'running' });
        expect(await store.delete(key, { oneOf: { status: ['running'] } })).toEqual({ ...key, status: 'running' });
        expect(await store.get(key)).toBeUndefined();
      });
    });

    describe('query', () => {
      it('reads one partition in byte order, by prefix, both ways', async () => {
        const pk = partition('query');
        const stored = ['a#2', 'b#1', 'a', 'a#10', 'A#1', 'a$', 'a#1', 'a~1', 'a~~', 'a\u007f'];
        stored.push('u#\uFFFD', 'u#😀', 'u#é');
        for (const sk of stored) await store.put({ pk, sk });
        await store.put({ pk: partition('query'), sk: 'a#1' }); // another partition

        // UTF-8 byte order: é (C3 A9) < U+FFFD (EF BF BD) < 😀 (F0 9F 98 80), unlike UTF-16 order.
        const all = ['A#1', 'a', 'a#1', 'a#10', 'a#2', 'a$', 'a~1', 'a~~', 'a\u007f', 'b#1'];
        all.push('u#é', 'u#\uFFFD', 'u#😀');
        expect(sks((await store.query({ pk })).items)).toEqual(all);
        expect(sks((await store.query({ pk, descending: true })).items)).toEqual([...all].reverse());
        expect(sks((await store.query({ pk, skPrefix: 'a#' })).items)).toEqual(['a#1', 'a#10', 'a#2']);
        const descending = await store.query({ pk, skPrefix: 'a#', descending: true });
        expect(sks(descending.items)).toEqual(['a#2', 'a#10', 'a#1']);
        expect(sks((await store.query({ pk, skPrefix: 'a~' })).items)).toEqual(['a~1', 'a~~']);
        expect(sks((await store.query({ pk, skPrefix: 'u#' })).items)).toEqual(['u#é', 'u#\uFFFD', 'u#😀']);
        expect((await store.query({ pk, skPrefix: 'zzz' })).items).toEqual([]);
        expect((await store.query({ pk: partition('empty') })).items).toEqual([]);
      });

      it('pages with limit and cursor, visiting every item once, both ways', async () => {
        const pk = partition('pages');
        const all = Array.from({ length: 25 }, (_, i) => `i#${String(i).padStart(2, '0')}`);
        for (const sk of [...all].reverse()) await store.put({ pk, sk, body: { i: sk } });
        await store.put({ pk, sk: 'other' });

        for (const limit of [1, 7, 25, 100]) {
          const pages = await readPages({ pk, skPrefix: 'i#', limit });
          expect(sks(pages.flat())).toEqual(all);
          expect(pages.length).toBeLessThanOrEqual(Math.ceil(all.length / limit) + 1);
          const reverse = await readPages({ pk, skPrefix: 'i#', limit, descending: true });
          expect(sks(reverse.flat())).toEqual([...all].reverse());
        }
        const first = await store.query({ pk, limit: 7 });
        expect(first.items).toHaveLength(7);
        expect(first.cursor).toEqual(expect.any(String));
        // Without a limit, a query started from a cursor reads the rest.
        expect(sks((await store.query({ pk, cursor: first.cursor })).items)).toEqual([...all.slice(7), 'other']);
      });

      it('rejects a limit that is not a positive integer', async () => {
        await expect(store.query({ pk: partition('limit'), limit: 0 })).rejects.toThrow();
      });

      it('queries gsi1 by partition and prefix, in order, with pages', async () => {
        const gsi1pk = partition('gsi');
        const expected: Item[] = [];
        for (let i = 0; i < 12; i++) {
          // Several items share each gsi1sk: pages must not lose or repeat ties.
          const item = { pk: partition('owner'), sk: `s${i}`, gsi1pk, gsi1sk: `t#${i % 4}`, i };
          expected.push(item);
          await store.put(item);
        }
        await store.put({ pk: partition('owner'), sk: 'no-sort-key', gsi1pk }); // not in the index
        await store.put({ pk: partition('owner'), sk: 'elsewhere', gsi1pk: partition('gsi'), gsi1sk: 't#0' });

        const byIdentity = (items: Item[]) => items.map((item) => `${item.pk}/${item.sk}`).sort();
        const all = (await store.query({ index: 'gsi1', pk: gsi1pk })).items;
        expect(byIdentity(all)).toEqual(byIdentity(expected));
        expect(all.map((item) => item.gsi1sk)).toEqual([...all.map((item) => item.gsi1sk)].sort());
        expect(all.find((item) => item.i === 5)).toEqual(expected[5]);

        const prefixed = (await store.query({ index: 'gsi1', pk: gsi1pk, skPrefix: 't#1' })).items;
        expect(byIdentity(prefixed)).toEqual(byIdentity(expected.filter((item) => item.gsi1sk === 't#1')));

        for (const descending of [false, true]) {
          const paged = (await readPages({ index: 'gsi1', pk: gsi1pk, limit: 5, descending })).flat();
          expect(byIdentity(paged)).toEqual(byIdentity(expected));
          const order = paged.map((item) => item.gsi1sk);
          expect(order).toEqual(descending ? [...order].sort().reverse() : [...order].sort());
        }
      });
    });

    describe('ttl', () => {
      it('hides expired items from reads and treats them as absent in conditions', async () => {
        const pk = partition('ttl');
        const gsi1pk = partition('gsi');
        const expired = { pk, sk: 'expired', gsi1pk, gsi1sk: 'e', ttl: past(), secret: 'old' };
        const live = { pk, sk: 'live', gsi1pk, gsi1sk: 'l', ttl: future() };
        await store.put(expired);
        await store.put(live);

        expect(await store.get(expired)).toBeUndefined();
        expect(await store.get(live)).toEqual(live);
        expect((await store.query({ pk })).items).toEqual([live]);
        expect((await store.query({ index: 'gsi1', pk: gsi1pk })).items).toEqual([live]);

        await expect(store.put({ ...expired, ttl: future() }, { exists: true })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        await expect(store.put({ ...expired }, { equals: { secret: 'old' } })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        await expect(store.update(expired, { set: { a: 1 }, upsert: false })).rejects.toBeInstanceOf(
          ConditionFailedError,
        );
        expect(await store.delete(expired)).toBeUndefined();
      });

      it('lets a create replace an expired item, and an update start afresh', async () => {
        const pk = partition('ttl');
        await store.put({ pk, sk: 'lease', holder: 'old', ttl: past() });
        await store.put({ pk, sk: 'lease', holder: 'new', ttl: future() }, { exists: false });
        expect(await store.get({ pk, sk: 'lease' })).toMatchObject({ holder: 'new' });

        await store.put({ pk, sk: 'window', count: 41, stale: true, ttl: past() });
        expect(await store.update({ pk, sk: 'window' }, { add: { count: 1 } })).toEqual({ pk, sk: 'window', count: 1 });

        await store.put({ pk, sk: 'claim', stale: true, ttl: past() });
        await store.update({ pk, sk: 'claim' }, { set: { owner: 'me' }, condition: { exists: false } });
        expect(await store.get({ pk, sk: 'claim' })).toEqual({ pk, sk: 'claim', owner: 'me' });
      });

      it('pages past expired items without losing live ones', async () => {
        const pk = partition('ttlpages');
        for (let i = 0; i < 12; i++) await store.put({ pk, sk: `i#${i}`, ttl: i % 3 === 0 ? future() : past() });
        const pages = await readPages({ pk, limit: 2 });
        expect(sks(pages.flat())).toEqual(['i#0', 'i#3', 'i#6', 'i#9']);
      });

      it('treats expired items as absent inside transactions', async () => {
        const pk = partition('ttltx');
        await store.put({ pk, sk: 'counter', count: 9, ttl: past() });
        await store.put({ pk, sk: 'gone', ttl: past() });
        await store.transact([
          { kind: 'update', key: { pk, sk: 'counter' }, update: { add: { count: 1 } } },
          { kind: 'check', key: { pk, sk: 'gone' }, condition: { exists: false } },
        ]);
        expect(await store.get({ pk, sk: 'counter' })).toEqual({ pk, sk: 'counter', count: 1 });

        const error = await transactError(
          store.transact([{ kind: 'check', key: { pk, sk: 'gone' }, condition: { exists: true } }]),
        );
        expect(error.failedOps).toEqual([0]);
      });
    });

    describe('transact', () => {
      it('writes nothing when any condition fails, naming exactly the failing ops', async () => {
        const pk = partition('tx');
        await store.put({ pk, sk: 'a', version: 1 });
        await store.put({ pk, sk: 'c' });

        const error = await transactError(
          store.transact([
            { kind: 'put', item: { pk, sk: 'b' }, condition: { exists: false } },
            {
              kind: 'update',
              key: { pk, sk: 'a' },
              update: { add: { version: 1 }, condition: { equals: { version: 2 } } },
            },
            { kind: 'delete', key: { pk, sk: 'c' }, condition: { exists: true } },
            { kind: 'check', key: { pk, sk: 'd' }, condition: { exists: true } },
            { kind: 'update', key: { pk, sk: 'e' }, update: { set: { x: 1 }, upsert: false } },
          ]),
        );
        expect(error.failedOps).toEqual([1, 3, 4]);
        expect(sks((await store.query({ pk })).items)).toEqual(['a', 'c']);
        expect(await store.get({ pk, sk: 'a' })).toEqual({ pk, sk: 'a', version: 1 });
      });

      it('applies a mix of put, update, delete and check together', async () => {
        const pk = partition('tx');
        await store.put({ pk, sk: 'job', status: 'queued' });
        await store.put({ pk, sk: 'ticket' });
        await store.put({ pk, sk: 'guard', open: true });

        await store.transact([
          { kind: 'put', item: { pk, sk: 'event', kind: 'started' }, condition: { exists: false } },
          {
            kind: 'update',
            key: { pk, sk: 'job' },
            update: { set: { status: 'running' }, condition: { equals: { status: 'queued' } } },
          },
          { kind: 'update', key: { pk, sk: 'stats' }, update: { add: { started: 1 } } },
          { kind: 'delete', key: { pk, sk: 'ticket' }, condition: { exists: true } },
          { kind: 'check', key: { pk, sk: 'guard' }, condition: { equals: { open: true } } },
        ]);
        expect((await store.query({ pk })).items).toEqual([
          { pk, sk: 'event', kind: 'started' },
          { pk, sk: 'guard', open: true },
          { pk, sk: 'job', status: 'running' },
          { pk, sk: 'stats', started: 1 },
        ]);
      });

      it('rejects touching one item twice', async () => {
        const pk = partition('tx');
        await expect(
          store.transact([
            { kind: 'put', item: { pk, sk: 'x' } },
            { kind: 'update', key: { pk, sk: 'x' }, update: { set: { a: 1 } } },
          ]),
        ).rejects.toThrow();
        expect(await store.get({ pk, sk: 'x' })).toBeUndefined();
      });
    });

    describe('concurrent writers', () => {
      it('lets exactly one of 32 parallel conditional creates win', async () => {
        const key = { pk: partition('race'), sk: 'x' };
        const results = await Promise.allSettled(
          Array.from({ length: 32 }, (_, i) => store.put({ ...key, owner: i }, { exists: false })),
        );
        const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const result of results) {
          if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(ConditionFailedError);
        }
        expect(await store.get(key)).toEqual({ ...key, owner: winners[0] });
      });

      it('lets exactly one of 16 parallel transactional creates win', async () => {
        const pk = partition('txrace');
        const results = await Promise.allSettled(
          Array.from({ length: 16 }, (_, i) =>
            store.transact([
              { kind: 'put', item: { pk, sk: 'x', owner: i }, condition: { exists: false } },
              { kind: 'update', key: { pk, sk: `log#${i}` }, update: { set: { tried: true } } },
            ]),
          ),
        );
        expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
        for (const result of results) {
          if (result.status === 'rejected') expect(result.reason).toMatchObject({ failedOps: [0] });
        }
        expect((await store.query({ pk, skPrefix: 'log#' })).items).toHaveLength(1);
      });

      it('loses no increments among 32 parallel adds', async () => {
        const key = { pk: partition('adds'), sk: 'x' };
        await Promise.all(Array.from({ length: 32 }, () => store.update(key, { add: { count: 1 } })));
        expect(await store.get(key)).toEqual({ ...key, count: 32 });
      });

      it('loses no updates among 16 optimistic read-modify-write loops', async () => {
        const key = { pk: partition('rmw'), sk: 'x' };
        await store.put({ ...key, version: 0, seen: [] as number[] });

        const writeOnce = async (id: number) => {
          for (let attempt = 0; attempt < 1000; attempt++) {
            const current = (await store.get(key))!;
            const version = current.version as number;
            try {
              await store.put(
                { ...current, version: version + 1, seen: [...(current.seen as number[]), id] },
                { equals: { version } },
              );
              return;
            } catch (error) {
              if (!(error instanceof ConditionFailedError)) throw error;
            }
          }
          throw new Error(`writer ${id} never got through`);
        };
        const rounds = 3;
        await Promise.all(
          Array.from({ length: 16 }, async (_, id) => {
            for (let round = 0; round < rounds; round++) await writeOnce(id);
          }),
        );

        const final = (await store.get(key))!;
        expect(final.version).toBe(16 * rounds);
        const seen = [...(final.seen as number[])].sort((a, b) => a - b);
        expect(seen).toEqual(Array.from({ length: 16 * rounds }, (_, i) => Math.floor(i / rounds)));
      });
    });
  });
}

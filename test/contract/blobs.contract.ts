/**
 * The Blobs contract: what every adapter must do, run against each of them (blobs.test.ts).
 * Each test works under its own fresh prefix, so one store serves the whole suite.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidBlobKeyError } from '#adapters/blob-keys.ts';
import type { Blobs } from '#ports/blobs.ts';

export interface BlobsFixture {
  blobs: Blobs;
  /** The URI scheme `uriFor` answers with. */
  scheme: 's3:' | 'file:';
  close(): Promise<void>;
}

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

/** Runs `fn` over `items`, `limit` at a time. */
async function inBatches<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(fn));
}

export function describeBlobsContract(name: string, makeFixture: () => Promise<BlobsFixture>): void {
  describe(`Blobs contract: ${name}`, () => {
    let fixture: BlobsFixture;
    let blobs: Blobs;
    beforeAll(async () => {
      fixture = await makeFixture();
      blobs = fixture.blobs;
    });
    afterAll(async () => {
      await fixture?.close();
    });

    const space = () => `t-${randomUUID()}/`;

    describe('put, get and size', () => {
      it('round-trips text as UTF-8 and bytes exactly, and put replaces', async () => {
        const p = space();
        await blobs.put(`${p}text.txt`, 'ünïcødé ✓ 😀\n', 'text/plain');
        expect(text(await blobs.get(`${p}text.txt`))).toBe('ünïcødé ✓ 😀\n');

        const bytes = new Uint8Array(Array.from({ length: 512 }, (_, i) => i % 256));
        await blobs.put(`${p}bytes.bin`, bytes);
        const read = await blobs.get(`${p}bytes.bin`);
        expect(read).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(read!).equals(Buffer.from(bytes))).toBe(true);
        expect(await blobs.size(`${p}bytes.bin`)).toBe(512);

        await blobs.put(`${p}text.txt`, 'short');
        expect(text(await blobs.get(`${p}text.txt`))).toBe('short');
        expect(await blobs.size(`${p}text.txt`)).toBe(5);
      });

      it('stores empty blobs', async () => {
        const p = space();
        await blobs.put(`${p}empty`, '');
        expect(await blobs.get(`${p}empty`)).toEqual(new Uint8Array(0));
        expect(await blobs.size(`${p}empty`)).toBe(0);
        expect(await blobs.list(p)).toEqual([`${p}empty`]);
      });

      it('answers undefined for missing blobs, and for a prefix that is not itself a blob', async () => {
        const p = space();
        expect(await blobs.get(`${p}missing`)).toBeUndefined();
        expect(await blobs.get(`${p}missing`, { start: 0, end: 4 })).toBeUndefined();
        expect(await blobs.size(`${p}missing`)).toBeUndefined();
        await blobs.put(`${p}dir/file`, 'x');
        expect(await blobs.get(`${p}dir`)).toBeUndefined();
        expect(await blobs.size(`${p}dir`)).toBeUndefined();
      });

      it('keeps keys with spaces, unicode and punctuation', async () => {
        const p = space();
        const keys = [`${p}a b/c d.txt`, `${p}é/ñ 😀.json`, `${p}x+y=z&q?#%.bin`];
        for (const [i, key] of keys.entries()) await blobs.put(key, `v${i}`);
        for (const [i, key] of keys.entries()) expect(text(await blobs.get(key))).toBe(`v${i}`);
      });
    });

    describe('ranges', () => {
      const body = '0123456789abcdefghij'; // 20 bytes
      let key: string;
      beforeAll(async () => {
        key = `${space()}range.txt`;
        await blobs.put(key, body);
      });

      it.each([
        [{ start: 0, end: 4 }, '0123'],
        [{ start: 5, end: 6 }, '5'],
        [{ start: 10 }, 'abcdefghij'],
        [{ start: 0 }, body],
        [{ start: 15, end: 100 }, 'fghij'],
        [{ start: 19, end: 20 }, 'j'],
        [{ start: 20 }, ''],
        [{ start: 25, end: 30 }, ''],
        [{ start: 7, end: 7 }, ''],
      ])('reads %o as %j', async (range, expected) => {
        expect(text(await blobs.get(key, range))).toBe(expected);
      });

      it('reads any range of an empty blob as empty', async () => {
        const empty = `${space()}empty`;
        await blobs.put(empty, '');
        expect(await blobs.get(empty, { start: 0, end: 10 })).toEqual(new Uint8Array(0));
        expect(await blobs.get(empty, { start: 0 })).toEqual(new Uint8Array(0));
      });

      it.each([[{ start: -1 }], [{ start: 1.5 }], [{ start: 5, end: 4 }]])('refuses the range %o', async (range) => {
        await expect(blobs.get(key, range)).rejects.toThrow(RangeError);
      });

      it('pages through a file by its byte offsets, as output.idx readers do', async () => {
        const lines = Array.from({ length: 50 }, (_, i) => `${JSON.stringify({ i, pad: 'x'.repeat(i) })}\n`);
        const p = space();
        await blobs.put(`${p}output.jsonl`, lines.join(''));
        const offsets = lines.reduce<number[]>((acc, line) => [...acc, acc.at(-1)! + Buffer.byteLength(line)], [0]);
        const page = await blobs.get(`${p}output.jsonl`, { start: offsets[10]!, end: offsets[20]! });
        expect(text(page)).toBe(lines.slice(10, 20).join(''));
      });
    });

    describe('list', () => {
      it('lists keys under a prefix in UTF-8 byte order, partial last segments included', async () => {
        const p = space();
        // UTF-16 order would put 😀 (a surrogate pair) before ﬀ (U+FB00); UTF-8 order puts it after.
        const keys = [`${p}jobs/2/c`, `${p}jobs/10/b`, `${p}jobs/1/a`, `${p}jobs/1/sub/deep.txt`, `${p}😀`, `${p}ﬀ`, `${p}Z`, `${p}jobs/1x`];
        for (const key of keys) await blobs.put(key, 'x');

        expect(await blobs.list(p)).toEqual([
          `${p}Z`,
          `${p}jobs/1/a`,
          `${p}jobs/1/sub/deep.txt`,
          `${p}jobs/10/b`,
          `${p}jobs/1x`,
          `${p}jobs/2/c`,
          `${p}ﬀ`,
          `${p}😀`,
        ]);
        expect(await blobs.list(`${p}jobs/1/`)).toEqual([`${p}jobs/1/a`, `${p}jobs/1/sub/deep.txt`]);
        expect(await blobs.list(`${p}jobs/1`)).toEqual([`${p}jobs/1/a`, `${p}jobs/1/sub/deep.txt`, `${p}jobs/10/b`, `${p}jobs/1x`]);
        expect(await blobs.list(`${p}jobs/1/a`)).toEqual([`${p}jobs/1/a`]);
        expect(await blobs.list(`${p}nothing/`)).toEqual([]);
      });

      it('lists and deletes more keys than one page holds (1000)', async () => {
        const p = space();
        const keys = Array.from({ length: 1234 }, (_, i) => `${p}many/${String(i).padStart(5, '0')}`);
        await inBatches(keys, 64, (key) => blobs.put(key, 'x'));
        await blobs.put(`${p}other`, 'kept');

        expect(await blobs.list(`${p}many/`)).toEqual(keys);
        await blobs.deletePrefix(`${p}many/`);
        expect(await blobs.list(p)).toEqual([`${p}other`]);
      });
    });

    describe('deletePrefix', () => {
      it('removes everything under the prefix and nothing beside it', async () => {
        const p = space();
        for (const key of ['job1/a', 'job1/ckpts/10/adapter.bin', 'job10/b', 'job1x']) await blobs.put(`${p}${key}`, 'x');

        await blobs.deletePrefix(`${p}job1/`);
        expect(await blobs.list(p)).toEqual([`${p}job10/b`, `${p}job1x`]);
        expect(await blobs.get(`${p}job1/a`)).toBeUndefined();
      });

      it('treats a key as its own prefix, and a missing prefix as nothing to do', async () => {
        const p = space();
        await blobs.put(`${p}single.txt`, 'x');
        await blobs.put(`${p}keep.txt`, 'x');
        await blobs.deletePrefix(`${p}single.txt`);
        expect(await blobs.list(p)).toEqual([`${p}keep.txt`]);
        await blobs.deletePrefix(`${p}nothing/`);
        expect(await blobs.list(p)).toEqual([`${p}keep.txt`]);
      });

      it('lets a deleted key be written again', async () => {
        const p = space();
        await blobs.put(`${p}d/k`, 'one');
        await blobs.deletePrefix(`${p}d/`);
        await blobs.put(`${p}d/k`, 'two');
        expect(text(await blobs.get(`${p}d/k`))).toBe('two');
      });

      it('refuses the empty prefix (everything)', async () => {
        await expect(blobs.deletePrefix('')).rejects.toThrow(InvalidBlobKeyError);
      });
    });

    describe('presignGet', () => {
      it('gives a URL that fetches the bytes with a plain GET', async () => {
        const p = space();
        const bytes = randomBytes(300_000);
        await blobs.put(`${p}ckpts/100.tar.gz`, bytes, 'application/gzip');
        const url = await blobs.presignGet(`${p}ckpts/100.tar.gz`, 60);
        expect(url).toMatch(/^https?:\/\//);

        const response = await fetch(url);
        expect(response.status).toBe(200);
        expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
      });

      it('signs keys with spaces and unicode', async () => {
        const key = `${space()}dir with space/ñ 😀 #1?.txt`;
        await blobs.put(key, 'hello');
        const response = await fetch(await blobs.presignGet(key, 604_800));
        expect(response.status).toBe(200);
        expect(await response.text()).toBe('hello');
      });

      it('honours a Range header on the presigned URL', async () => {
        const key = `${space()}r.txt`;
        await blobs.put(key, '0123456789');
        const response = await fetch(await blobs.presignGet(key, 60), { headers: { range: 'bytes=2-5' } });
        expect(response.status).toBe(206);
        expect(await response.text()).toBe('2345');
      });

      it.each([0, -5, 1.5, 604_801, Number.NaN])('refuses an expiry of %s seconds', async (seconds) => {
        await expect(blobs.presignGet(`${space()}k`, seconds)).rejects.toThrow(RangeError);
      });
    });

    describe('uriFor', () => {
      it('addresses keys and prefixes in the engine’s scheme', () => {
        const p = space();
        const uri = blobs.uriFor(`${p}jobs/12/output.jsonl`);
        expect(new URL(uri).protocol).toBe(fixture.scheme);
        expect(uri).toMatch(/jobs\/12\/output\.jsonl$/);
        expect(blobs.uriFor(`${p}jobs/12/`)).toBe(uri.replace(/output\.jsonl$/, ''));
        expect(blobs.uriFor(`${p}jobs/13/output.jsonl`)).not.toBe(uri);
      });
    });

    describe('keys', () => {
      const BAD = ['', '/etc/passwd', '../outside', 'a/../../b', 'a//b', './a', 'a/./b', 'a/', 'nul\u0000byte', 'line\nbreak', 'x'.repeat(1025)];

      it.each(BAD.map((key) => [JSON.stringify(key).slice(0, 40), key]))('refuses the key %s everywhere', async (_label, key) => {
        await expect(blobs.put(key, 'x')).rejects.toThrow(InvalidBlobKeyError);
        await expect(blobs.get(key)).rejects.toThrow(InvalidBlobKeyError);
        await expect(blobs.size(key)).rejects.toThrow(InvalidBlobKeyError);
        await expect(blobs.presignGet(key, 60)).rejects.toThrow(InvalidBlobKeyError);
      });

      it.each(['../', '/abs/', 'a/../', 'a//'])('refuses the prefix %j', async (prefix) => {
        await expect(blobs.list(prefix)).rejects.toThrow(InvalidBlobKeyError);
        await expect(blobs.deletePrefix(prefix)).rejects.toThrow(InvalidBlobKeyError);
        expect(() => blobs.uriFor(prefix)).toThrow(InvalidBlobKeyError);
      });
    });
  });
}

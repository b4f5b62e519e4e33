import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Blobs } from '#adapters/aws/s3-blobs.ts';
import { InvalidBlobKeyError } from '#adapters/blob-keys.ts';
import { blobSignature, LocalBlobs, verifyBlobSignature } from '#adapters/embedded/local-blobs.ts';
import { resolveRange } from '#http/routes/blobs.ts';
import { startBlobServer, TEST_SIGNING_KEY, type BlobServer } from '#test/support/blob-server.ts';
import { startFauxqsForTests, type FauxqsForTests } from '#test/support/fauxqs.ts';
import { describeBlobsContract } from './blobs.contract.ts';

const tempRoot = mkdtempSync(join(tmpdir(), 'bakehouse-blobs-'));
afterAll(() => rmSync(tempRoot, { recursive: true, force: true }));
const freshDir = () => mkdtempSync(join(tempRoot, 'root-'));

let fauxqs: FauxqsForTests;
beforeAll(async () => {
  fauxqs = await startFauxqsForTests();
});
afterAll(() => fauxqs?.stop());

async function s3Fixture(prefix?: string) {
  const client = fauxqs.s3();
  const bucket = `bakehouse-${randomUUID()}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { client, bucket, blobs: new S3Blobs({ client, bucket, prefix }) };
}

describeBlobsContract('LocalBlobs (served by the blob route)', async () => {
  const server = await startBlobServer(freshDir());
  return { blobs: server.blobs, scheme: 'file:', close: server.close };
});

describeBlobsContract('S3Blobs (fauxqs S3)', async () => {
  const { blobs } = await s3Fixture();
  return { blobs, scheme: 's3:', close: async () => {} };
});

describeBlobsContract('S3Blobs under a key prefix (fauxqs S3)', async () => {
  const { blobs } = await s3Fixture('tenant-a/');
  return { blobs, scheme: 's3:', close: async () => {} };
});

describe('LocalBlobs', () => {
  it('keeps files under its root, addressed by file:// URIs the engine can open', async () => {
    const root = freshDir();
    const blobs = new LocalBlobs({ root, baseUrl: 'http://127.0.0.1:1', signingKey: TEST_SIGNING_KEY });
    await blobs.put('jobs/12/output.jsonl', '{"a":1}\n');
    const uri = blobs.uriFor('jobs/12/output.jsonl');
    expect(uri).toBe(`file://${root}/jobs/12/output.jsonl`);
    expect(fileURLToPath(uri)).toBe(join(root, 'jobs/12/output.jsonl'));
    expect(blobs.uriFor('jobs/12/')).toBe(`file://${root}/jobs/12/`);
    expect(blobs.uriFor('a b/#1.txt')).toBe(`file://${root}/a%20b/%231.txt`);
  });

  it('lists files the engine wrote directly, and skips writes in progress', async () => {
    const root = freshDir();
    const blobs = new LocalBlobs({ root, baseUrl: 'http://127.0.0.1:1', signingKey: TEST_SIGNING_KEY });
    mkdirSync(join(root, 'jobs/1'), { recursive: true });
    writeFileSync(join(root, 'jobs/1/metrics.jsonl'), '{}\n');
    mkdirSync(join(root, '.partial'), { recursive: true });
    writeFileSync(join(root, '.partial/abc.partial'), 'half');
    expect(await blobs.list('')).toEqual(['jobs/1/metrics.jsonl']);
    await expect(blobs.put('.partial/x', 'x')).rejects.toThrow(InvalidBlobKeyError);
  });

  it('writes atomically: a reader sees the old bytes or the new ones, never a mix', async () => {
    const blobs = new LocalBlobs({ root: freshDir(), baseUrl: 'http://127.0.0.1:1', signingKey: TEST_SIGNING_KEY });
    const size = 2 * 1024 * 1024;
    const versions = ['a', 'b'].map((char) => Buffer.alloc(size, char));
    await blobs.put('big', versions[0]!);
    let reading = true;
    const reads: Promise<void>[] = [];
    const reader = (async () => {
      while (reading) {
        const bytes = Buffer.from((await blobs.get('big'))!);
        expect(bytes.length).toBe(size);
        expect(bytes[0] === bytes[size - 1] && bytes.indexOf(bytes[0] === 97 ? 98 : 97) === -1).toBe(true);
      }
    })();
    reads.push(reader);
    for (let i = 0; i < 20; i++) await blobs.put('big', versions[i % 2]!);
    reading = false;
    await Promise.all(reads);
    expect(readdirSync(join(blobs.root, '.partial'))).toEqual([]);
  });

  it('reads a range through the file handle, not the whole file (a 5 GB sparse file)', async () => {
    const root = freshDir();
    const blobs = new LocalBlobs({ root, baseUrl: 'http://127.0.0.1:1', signingKey: TEST_SIGNING_KEY });
    await blobs.put('huge.bin', 'head');
    const path = join(root, 'huge.bin');
    truncateSync(path, 5 * 1024 ** 3); // beyond what one Buffer may hold, so a whole read would throw
    const tail = await blobs.get('huge.bin', { start: 5 * 1024 ** 3 - 10 });
    expect(tail).toEqual(new Uint8Array(10));
    expect(Buffer.from((await blobs.get('huge.bin', { start: 0, end: 4 }))!).toString()).toBe('head');
    expect(await blobs.size('huge.bin')).toBe(5 * 1024 ** 3);
  });

  it('prunes directories a delete leaves empty', async () => {
    const root = freshDir();
    const blobs = new LocalBlobs({ root, baseUrl: 'http://127.0.0.1:1', signingKey: TEST_SIGNING_KEY });
    await blobs.put('jobs/1/ckpts/10/adapter.bin', 'x');
    await blobs.put('jobs/2/a', 'x');
    await blobs.deletePrefix('jobs/1/');
    expect(existsSync(join(root, 'jobs/1'))).toBe(false);
    expect(existsSync(join(root, 'jobs/2/a'))).toBe(true);
  });

  it('refuses a short signing key', () => {
    expect(() => new LocalBlobs({ root: freshDir(), baseUrl: 'http://x', signingKey: 'short' })).toThrow(/signing key/);
  });

  it('presigns `${baseUrl}/v1/blobs/<key, each segment encoded>?expires=<unix s>&signature=<hex>`', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const blobs = new LocalBlobs({ root: freshDir(), baseUrl: 'http://127.0.0.1:9/', signingKey: TEST_SIGNING_KEY, clock: { now: () => now } });
    const url = new URL(await blobs.presignGet('jobs/1/a b.txt', 3600));
    const expires = now.getTime() / 1000 + 3600;
    expect(url.origin + url.pathname).toBe('http://127.0.0.1:9/v1/blobs/jobs/1/a%20b.txt');
    expect(url.searchParams.get('expires')).toBe(String(expires));
    expect(url.searchParams.get('signature')).toBe(blobSignature('jobs/1/a b.txt', expires, TEST_SIGNING_KEY));
  });
});

describe('verifyBlobSignature', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const nowS = now.getTime() / 1000;
  const sign = (key: string, expires: number) => blobSignature(key, expires, TEST_SIGNING_KEY);

  it.each([
    ['a signature of this key and expiry', 'k', String(nowS + 60), sign('k', nowS + 60), 'valid'],
    ['the last second of validity', 'k', String(nowS), sign('k', nowS), 'valid'],
    ['no signature', 'k', String(nowS + 60), undefined, 'missing'],
    ['no expiry', 'k', undefined, sign('k', nowS + 60), 'missing'],
    ['another key', 'other', String(nowS + 60), sign('k', nowS + 60), 'invalid'],
    ['a moved expiry', 'k', String(nowS + 120), sign('k', nowS + 60), 'invalid'],
    ['a signature that is not hex', 'k', String(nowS + 60), 'z'.repeat(64), 'invalid'],
    ['a truncated signature', 'k', String(nowS + 60), sign('k', nowS + 60).slice(0, 63), 'invalid'],
    ['an expiry that is not a number', 'k', '12abc', sign('k', nowS + 60), 'invalid'],
    ['another signing key', 'k', String(nowS + 60), blobSignature('k', nowS + 60, 'another-key-0123456789'), 'invalid'],
    ['a past expiry', 'k', String(nowS - 1), sign('k', nowS - 1), 'expired'],
    ['an expiry beyond 7 days', 'k', String(nowS + 604_801), sign('k', nowS + 604_801), 'invalid'],
  ])('%s → %s', (_label, key, expires, signature, expected) => {
    expect(verifyBlobSignature(key, expires, signature, TEST_SIGNING_KEY, now)).toBe(expected);
  });
});

describe('GET /v1/blobs/{key} (the blob route)', () => {
  let now = new Date();
  let server: BlobServer;
  beforeAll(async () => {
    server = await startBlobServer(freshDir(), { clock: { now: () => now } });
  });
  afterAll(() => server?.close());

  async function presigned(key: string, body: string | Uint8Array = 'content', seconds = 60): Promise<URL> {
    await server.blobs.put(key, body);
    return new URL(await server.blobs.presignGet(key, seconds));
  }

  async function expectForbidden(url: URL | string, message: RegExp) {
    const response = await fetch(url);
    expect(response.status).toBe(403);
    expect(response.headers.get('content-type')).toMatch(/application\/json/);
    const body = (await response.json()) as { message: string; code: string };
    expect(body).toEqual({ message: expect.stringMatching(message), code: 'FORBIDDEN' });
  }

  it('serves the bytes as application/octet-stream, with no bearer token', async () => {
    const url = await presigned('route/a.bin', 'hello');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    expect(response.headers.get('content-length')).toBe('5');
    expect(await response.text()).toBe('hello');
  });

  it('streams a large file whole', async () => {
    const bytes = randomBytes(24 * 1024 * 1024);
    const url = await presigned('route/large.bin', bytes);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    const hash = createHash('sha256');
    const reader = response.body!.getReader();
    let received = 0;
    let chunks = 0;
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      hash.update(next.value);
      received += next.value.length;
      chunks++;
    }
    expect(received).toBe(bytes.length);
    expect(chunks).toBeGreaterThan(1);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('refuses a tampered signature', async () => {
    const url = await presigned('route/t1');
    const signature = url.searchParams.get('signature')!;
    url.searchParams.set('signature', (signature[0] === 'a' ? 'b' : 'a') + signature.slice(1));
    await expectForbidden(url, /invalid signature/);
  });

  it('refuses a URL whose key was changed', async () => {
    const url = await presigned('route/t2');
    await server.blobs.put('route/t3', 'secret');
    url.pathname = url.pathname.replace(/t2$/, 't3');
    await expectForbidden(url, /invalid signature/);
  });

  it('refuses a URL whose expiry was pushed back', async () => {
    const url = await presigned('route/t4');
    url.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 3600));
    await expectForbidden(url, /invalid signature/);
  });

  it('refuses an expired URL', async () => {
    const url = await presigned('route/t5', 'x', 10);
    expect((await fetch(url)).status).toBe(200);
    now = new Date(now.getTime() + 11_000);
    try {
      await expectForbidden(url, /expired/);
    } finally {
      now = new Date();
    }
  });

  it.each([['signature'], ['expires']])('refuses a URL without its %s', async (param) => {
    const url = await presigned(`route/missing-${param}`);
    url.searchParams.delete(param);
    await expectForbidden(url, /missing/);
  });

  it('refuses a bare URL', async () => {
    await server.blobs.put('route/bare', 'x');
    await expectForbidden(`${server.baseUrl}/v1/blobs/route/bare`, /missing/);
  });

  it('answers 404 for a signed key with no blob', async () => {
    const url = await presigned('route/gone');
    await server.blobs.deletePrefix('route/gone');
    const response = await fetch(url);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ message: 'Blob not found', code: 'RESOURCE_NOT_FOUND' });
  });

  it.each([
    ['bytes=0-3', 206, 'bytes 0-3/10', '0123'],
    ['bytes=7-', 206, 'bytes 7-9/10', '789'],
    ['bytes=-2', 206, 'bytes 8-9/10', '89'],
    ['bytes=5-100', 206, 'bytes 5-9/10', '56789'],
    ['bytes=10-', 416, 'bytes */10', ''],
    ['bytes=0-1,4-5', 200, null, '0123456789'],
    ['items=0-1', 200, null, '0123456789'],
  ])('answers Range %s with %i', async (range, status, contentRange, body) => {
    const url = await presigned(`route/range-${randomUUID()}`, '0123456789');
    const response = await fetch(url, { headers: { range } });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-range')).toBe(contentRange);
    expect(await response.text()).toBe(body);
  });

  it('answers HEAD with the size and no body', async () => {
    const url = await presigned('route/head', '12345');
    const response = await fetch(url, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe('5');
  });

  it('documents the route as /v1/blobs/{key} without bearer security', async () => {
    const doc = server.app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 't', version: '1' } });
    const operation = doc.paths?.['/v1/blobs/{key}']?.get;
    expect(operation).toBeDefined();
    expect(operation?.security).toBeUndefined();
    expect(Object.keys(operation?.responses ?? {})).toEqual(expect.arrayContaining(['200', '403', '404']));
  });
});

describe('resolveRange', () => {
  it.each([
    ['bytes=0-0', 5, { start: 0, end: 1 }],
    ['bytes=-10', 5, { start: 0, end: 5 }],
    ['bytes=3-1', 5, undefined],
    ['bytes=-0', 5, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-', 5, undefined],
  ])('%s of %i bytes → %o', (header, size, expected) => {
    expect(resolveRange(header, size)).toEqual(expected);
  });
});

describe('S3Blobs', () => {
  it('addresses s3://bucket/<prefix><key> and keeps prefixes apart', async () => {
    const client = fauxqs.s3();
    const bucket = `bakehouse-${randomUUID()}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const a = new S3Blobs({ client, bucket, prefix: 'tenant-a/' });
    const b = new S3Blobs({ client, bucket, prefix: 'tenant-b/' });
    expect(a.uriFor('jobs/1/output.jsonl')).toBe(`s3://${bucket}/tenant-a/jobs/1/output.jsonl`);
    expect(a.uriFor('jobs/1/')).toBe(`s3://${bucket}/tenant-a/jobs/1/`);

    await a.put('k', 'from a');
    expect(await b.get('k')).toBeUndefined();
    expect(await b.list('')).toEqual([]);
    expect(await a.list('')).toEqual(['k']);
  });

  it('presigns a GET that expires when asked', async () => {
    const { blobs } = await s3Fixture();
    const url = new URL(await blobs.presignGet('k', 900));
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a prefix option without a trailing slash', () => {
    expect(() => new S3Blobs({ client: new S3Client({}), bucket: 'b', prefix: 'tenant' })).toThrow(InvalidBlobKeyError);
  });

  it('fails a delete that S3 reports as partly failed', async () => {
    const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const mock = mockClient(client);
    try {
      const blobs = new S3Blobs({ client, bucket: 'b' });
      mock.onAnyCommand().callsFake((input: { Prefix?: string }) =>
        input.Prefix !== undefined ? { Contents: [{ Key: 'p/a' }, { Key: 'p/b' }] } : {},
      );
      mock.on(DeleteObjectsCommand).resolves({ Errors: [{ Key: 'p/b', Code: 'AccessDenied', Message: 'Access Denied' }] });
      await expect(blobs.deletePrefix('p/')).rejects.toThrow(/could not delete 1 of 2 blobs.*p\/b: AccessDenied/);
    } finally {
      mock.restore();
      client.destroy();
    }
  });
});

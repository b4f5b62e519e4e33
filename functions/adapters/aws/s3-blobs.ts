/**
 * S3Blobs: the Blobs port on one S3 bucket, optionally under a key prefix (`tenant/`).
 *
 * Keys follow the shared rules (blob-keys.ts), stricter than S3's own, so that code which works
 * here also works on LocalBlobs. Ranges are sent as HTTP Range headers; a range that starts past
 * the end reads as empty, as on LocalBlobs.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobRange, Blobs } from '#ports/blobs.ts';
import {
  assertBlobKey,
  assertBlobPrefix,
  assertBlobRange,
  assertPresignExpiry,
  compareKeys,
  InvalidBlobKeyError,
} from '../blob-keys.ts';

/** DeleteObjects takes at most 1000 keys a request. */
const DELETE_BATCH = 1000;

export interface S3BlobsOptions {
  /** Belongs to the caller, who destroys it. */
  client: S3Client;
  bucket: string;
  /** Prepended to every key; empty or ending with `/`. */
  prefix?: string;
}

export class S3Blobs implements Blobs {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;

  constructor({ client, bucket, prefix = '' }: S3BlobsOptions) {
    if (!bucket) throw new Error('S3Blobs needs a bucket name');
    if (prefix !== '' && !prefix.endsWith('/')) throw new InvalidBlobKeyError(`S3Blobs prefix must end with "/" (got ${prefix})`);
    assertBlobPrefix(prefix);
    this.client = client;
    this.bucket = bucket;
    this.prefix = prefix;
  }

  async put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.objectKey(key),
        Body: body,
        ContentType: contentType ?? 'application/octet-stream',
      }),
    );
  }

  async get(key: string, range?: BlobRange): Promise<Uint8Array | undefined> {
    const objectKey = this.objectKey(key);
    if (range && !assertBlobRange(range)) {
      return (await this.size(key)) === undefined ? undefined : new Uint8Array(0);
    }
    try {
      const { Body } = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: range && httpRange(range) }),
      );
      return Body ? await Body.transformToByteArray() : new Uint8Array(0);
    } catch (error) {
      if (isNamed(error, 'NoSuchKey')) return undefined;
      // The object exists but the range starts past its end (or it is empty).
      if (isNamed(error, 'InvalidRange')) return new Uint8Array(0);
      throw error;
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const { ContentLength } = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return ContentLength ?? 0;
    } catch (error) {
      if (isNamed(error, 'NotFound') || isNamed(error, 'NoSuchKey')) return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertBlobPrefix(prefix);
    const keys: string[] = [];
    const pages = paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix: this.prefix + prefix });
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) keys.push(object.Key.slice(this.prefix.length));
      }
    }
    return keys.sort(compareKeys);
  }

  async deletePrefix(prefix: string): Promise<void> {
    if (prefix === '') throw new InvalidBlobKeyError('Refusing to delete every blob: deletePrefix needs a non-empty prefix');
    const keys = await this.list(prefix);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const { Errors } = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true },
        }),
      );
      if (Errors?.length) {
        const first = Errors[0]!;
        throw new Error(`S3 could not delete ${Errors.length} of ${batch.length} blobs under ${prefix}: ${first.Key}: ${first.Code} ${first.Message}`);
      }
    }
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    assertPresignExpiry(expiresInSeconds);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), {
      expiresIn: expiresInSeconds,
    });
  }

  uriFor(key: string): string {
    // A prefix (ending in `/`) is addressable too: the engine is given its output prefix.
    if (key.endsWith('/')) assertBlobPrefix(key);
    else assertBlobKey(key);
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private objectKey(key: string): string {
    assertBlobKey(key);
    return this.prefix + key;
  }
}

/** BlobRange is [start, end); HTTP ranges are inclusive. */
function httpRange({ start, end }: BlobRange): string {
  return `bytes=${start}-${end === undefined ? '' : end - 1}`;
}

function isNamed(error: unknown, name: string): boolean {
  return error instanceof Error && (error.name === name || (error as { Code?: string }).Code === name);
}

/**
 * The Blobs port: job inputs and outputs, checkpoints and downloads. Keys are relative paths
 * (`jobs/12/output.jsonl`); each adapter maps them onto its bucket or directory.
 */
export interface BlobRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive; unset reads to the end. */
  end?: number;
}

export interface Blobs {
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  /** The bytes, or undefined when no blob is stored under the key. */
  get(key: string, range?: BlobRange): Promise<Uint8Array | undefined>;
  /** Size in bytes, or undefined when missing. */
  size(key: string): Promise<number | undefined>;
  /** Keys under a prefix, in ascending order. */
  list(prefix: string): Promise<string[]>;
  /** Removes every blob under the prefix (a key is its own prefix). */
  deletePrefix(prefix: string): Promise<void>;
  /** A URL that fetches the blob with a plain GET until it expires (1 ≤ expiresIn ≤ 604800 s). */
  presignGet(key: string, expiresInSeconds: number): Promise<string>;
  /** How the engine addresses the key: `s3://bucket/…` or `file:///…`. */
  uriFor(key: string): string;
}

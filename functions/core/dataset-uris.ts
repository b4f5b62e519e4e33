/**
 * Dataset URIs an operator allows (`BAKEHOUSE_DATASET_URI_PREFIXES`, or a tenant's
 * `datasetUriPrefixes`). Without this check a target could make the engine read any file it can
 * see, so every other URI is refused before it reaches a job.
 *
 * A prefix is a folder: `file:///srv/datasets/` or `s3://bucket/datasets/` (a missing final `/` is
 * added, so `s3://bucket/data` does not also allow `s3://bucket/database/`). A URI is compared
 * after percent-decoding and must hold no `.`/`..`/empty segment, query or fragment, so no
 * spelling of a path escapes its prefix.
 */

export const DATASET_URI_PREFIX = /^(file:\/\/\/|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/)/;

const DATASET_URI = /^(file|s3):\/\//;
const DATASET_FILE = /\.(jsonl|csv)$/i;
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f\\?#]/;

/** Whether the value is written as a URI (rather than a dataset name). */
export function isDatasetUri(value: string): boolean {
  return value.includes('://');
}

/** The prefixes as compared: each decoded and ending in `/`. */
export function normaliseDatasetUriPrefixes(prefixes: readonly string[]): string[] {
  return prefixes.map((prefix) => {
    const decoded = decodedUri(prefix.endsWith('/') ? prefix : `${prefix}/`);
    if (decoded === undefined || !DATASET_URI_PREFIX.test(decoded)) {
      throw new Error(`Dataset URI prefix ${JSON.stringify(prefix)} must be a file:/// or s3://bucket/ folder without '.' or '..' segments`);
    }
    return decoded;
  });
}

/** Whether `uri` names a JSONL or CSV file under one of the (normalised) prefixes. */
export function datasetUriAllowed(uri: string, prefixes: readonly string[]): boolean {
  const decoded = decodedUri(uri);
  if (decoded === undefined || !DATASET_FILE.test(decoded)) return false;
  return prefixes.some((prefix) => decoded.startsWith(prefix));
}

/** The percent-decoded URI, or undefined when it is not a plain file:/// or s3:// path. */
function decodedUri(uri: string): string | undefined {
  if (!DATASET_URI.test(uri)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(uri);
  } catch {
    return undefined;
  }
  if (UNSAFE.test(decoded)) return undefined;
  const path = decoded.replace(/^file:\/\/\//, '').replace(/^s3:\/\//, '');
  const segments = path.endsWith('/') ? path.slice(0, -1).split('/') : path.split('/');
  return segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..') ? decoded : undefined;
}

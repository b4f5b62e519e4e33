import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The credential a long-running job (a sampler, a trainer) presents on its relay routes. The job
 * spec carries the token; the job record keeps only its SHA-256, which `relayTokenMatches` checks
 * in constant time.
 */
export function newRelayToken(): { token: string; sha256: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, sha256: digest(token) };
}

export function relayTokenMatches(expectedSha256: unknown, token: string): boolean {
  if (typeof expectedSha256 !== 'string') return false;
  const presented = digest(token);
  return expectedSha256.length === presented.length && timingSafeEqual(Buffer.from(expectedSha256), Buffer.from(presented));
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

import { createHash } from 'node:crypto';
import { ConditionFailedError, type Store } from '../ports/store.ts';
import type { Clock } from '../ports/clock.ts';
import { BusyError, ValidationError } from './errors.ts';
import { keys } from './keys.ts';

/** bread-api.md §1.6: a stored answer is replayed for 24 hours. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60;

export interface StoredResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export interface IdempotentRequest {
  /** Identifies the caller: the hash of the presented API key. */
  caller: string;
  method: string;
  path: string;
  key: string;
  body: string;
}

export type Claim = { kind: 'claimed'; release: (response?: StoredResponse) => Promise<void> } | { kind: 'replay'; response: StoredResponse };

/**
 * Replays the first answer to a retried write. A request first claims its key; the claim is then
 * either completed with the response or released (on a server error) so a retry runs again.
 */
export class IdempotencyService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async claim(request: IdempotentRequest): Promise<Claim> {
    const key = keys.idempotency(digest([request.caller, request.method, request.path, request.key]));
    const fingerprint = digest([request.body]);
    const ttl = Math.floor(this.clock.now().getTime() / 1000) + IDEMPOTENCY_TTL_SECONDS;
    try {
      await this.store.put({ ...key, state: 'in_progress', fingerprint, ttl }, { exists: false });
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      const existing = await this.store.get(key);
      if (!existing) return this.claim(request);
      if (existing.fingerprint !== fingerprint) throw new ValidationError('Idempotency-Key reused with a different request');
      if (existing.state !== 'complete') throw new BusyError('A request with this Idempotency-Key is still in progress');
      return { kind: 'replay', response: existing.response as StoredResponse };
    }
    return {
      kind: 'claimed',
      release: async (response) => {
        if (response) await this.store.put({ ...key, state: 'complete', fingerprint, ttl, response });
        else await this.store.delete(key);
      },
    };
  }
}

function digest(parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\u0000');
  return hash.digest('hex');
}

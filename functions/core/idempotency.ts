import { createHash, randomUUID } from 'node:crypto';
import { ConditionFailedError, ignoreConditionFailed, putIf, type Condition, type Item, type Key, type Store } from '../ports/store.ts';
import type { Clock } from '../ports/clock.ts';
import { BusyError, ValidationError } from './errors.ts';
import { keys } from './keys.ts';

/** bread-api.md §1.6: a stored answer is replayed for 24 hours. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60;

/**
 * How long a claim holds its key unless renewed. The request holding it renews it while it runs,
 * so only a request lost with its server (a crash, a killed Lambda) lets it lapse; a retry after
 * that runs instead of answering "still in progress" for the rest of the day.
 */
export const IDEMPOTENCY_LEASE_MS = 60_000;

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

export interface IdempotencyOptions {
  /** How long an unrenewed claim holds its key; default IDEMPOTENCY_LEASE_MS. */
  leaseMs?: number;
}

/**
 * Replays the first answer to a retried write. A request first claims its key; the claim is then
 * either completed with the response or released (on a server error) so a retry runs again.
 *
 * A claim is a lease: its holder renews it every third of the lease, and a claim whose lease has
 * passed belongs to a request that died with its server. The first retry to find it so takes it
 * over with a write conditioned on that claim's id, so two retries never both run.
 */
export class IdempotencyService {
  private readonly leaseMs: number;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    options: IdempotencyOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? IDEMPOTENCY_LEASE_MS;
  }

  async claim(request: IdempotentRequest): Promise<Claim> {
    const key = keys.idempotency(digest([request.caller, request.method, request.path, request.key]));
    const fingerprint = digest([request.body]);
    const claimId = randomUUID();
    const claimed = () => ({ ...key, state: 'in_progress', fingerprint, ttl: this.expiry(), claimId, leaseUntil: this.leaseEnd() });
    for (;;) {
      if (await putIf(this.store, claimed(), { exists: false })) return this.hold(key, fingerprint, claimId);
      const existing = await this.store.get(key);
      if (!existing) continue;
      if (existing.fingerprint !== fingerprint) throw new ValidationError('Idempotency-Key reused with a different request');
      if (existing.state === 'complete') return { kind: 'replay', response: existing.response as StoredResponse };
      if (isLive(existing, this.clock.now().getTime())) throw new BusyError('A request with this Idempotency-Key is still in progress');
      if (await putIf(this.store, claimed(), heldBy(existing))) return this.hold(key, fingerprint, claimId);
      // Another retry took the lapsed claim first: look again.
    }
  }

  /** Keeps the claim renewed until it is released, then stores the answer or frees the key. */
  private hold(key: Key, fingerprint: string, claimId: string): Claim {
    const ours: Condition = { equals: { state: 'in_progress', claimId } };
    const renewal = setInterval(() => {
      this.store.update(key, { set: { leaseUntil: this.leaseEnd() }, condition: ours, upsert: false }).catch((error: unknown) => {
        // Lost to a retry that found the lease lapsed (this process stalled): stop renewing. Any
        // other failure is transient; the next renewal comes well before the lease ends.
        if (error instanceof ConditionFailedError) clearInterval(renewal);
      });
    }, this.leaseMs / 3);
    renewal.unref();
    return {
      kind: 'claimed',
      release: async (response) => {
        clearInterval(renewal);
        // Conditioned on our claim: a retry that took the key over after this process stalled
        // past the lease owns it now, and its answer is the one kept.
        if (response) await putIf(this.store, { ...key, state: 'complete', fingerprint, ttl: this.expiry(), response }, ours);
        else await this.store.delete(key, ours).catch(ignoreConditionFailed);
      },
    };
  }


  private expiry(): number {
    return Math.floor(this.clock.now().getTime() / 1000) + IDEMPOTENCY_TTL_SECONDS;
  }

  private leaseEnd(): number {
    return this.clock.now().getTime() + this.leaseMs;
  }
}

/** Whether an in-progress claim's lease still runs (claims stored without a lease count as lapsed). */
function isLive(claim: Item, now: number): boolean {
  return typeof claim.leaseUntil === 'number' && claim.leaseUntil > now;
}

/** The condition that the stored claim is still `claim`, for taking it over. */
function heldBy(claim: Item): Condition {
  return typeof claim.claimId === 'string'
    ? { equals: { state: 'in_progress', claimId: claim.claimId } }
    : { equals: { state: 'in_progress' }, absent: ['claimId'] };
}


function digest(parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\u0000');
  return hash.digest('hex');
}

import { randomUUID } from 'node:crypto';
import { ignoreConditionFailed, putIf, type Condition, type Item, type Store } from '../../ports/store.ts';
import type { Clock } from '../../ports/clock.ts';
import { BusyError, ConflictError } from '../errors.ts';
import { keys } from '../keys.ts';
import type { SignatureScheme } from './hook-signatures.ts';

/**
 * How long an accepted delivery id is remembered. A Standard Webhooks timestamp is accepted up to
 * 5 minutes either side of now, so a signed request stays usable for at most 10 minutes; 15 leave
 * a margin for clock skew between servers. GitHub signs no timestamp: its ids are kept a day, the
 * span over which GitHub redelivers.
 */
export const REMEMBER_SECONDS: Record<SignatureScheme, number> = { standard: 15 * 60, github: 24 * 60 * 60 };

/**
 * How long a claimed delivery holds its id while its action starts. Starting is a few Store
 * writes; a claim older than this belongs to a server that died mid-start, and a redelivery may
 * take it over (job and pipeline starts are idempotent, so a start repeated this way is harmless).
 */
export const CLAIM_LEASE_MS = 30_000;

/**
 * Remembers the delivery ids a trigger accepted, so a replayed request starts nothing. An id is
 * claimed before the action starts (two copies racing cannot both start it), kept once it started,
 * and released when the start fails, so the sender's redelivery is not refused as a replay.
 */
export class SeenDeliveries {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Claims the id; returns the function that settles the claim once the action started or failed. */
  async claim(triggerId: string, scheme: SignatureScheme, deliveryId: string): Promise<(started: boolean) => Promise<void>> {
    const key = keys.triggerDelivery(triggerId, scheme, deliveryId);
    const claimId = randomUUID();
    const now = this.clock.now().getTime();
    const item: Item = { ...key, state: 'starting', claimId, leaseUntil: now + CLAIM_LEASE_MS, ttl: Math.floor(now / 1000) + REMEMBER_SECONDS[scheme] };
    for (;;) {
      if (await putIf(this.store, item, { exists: false })) break;
      const existing = await this.store.get(key);
      if (!existing) continue; // its record expired in between
      if (!(existing.state === 'starting' && (existing.leaseUntil as number) <= now)) throw refusal(existing, deliveryId);
      if (await putIf(this.store, item, { equals: { state: 'starting', claimId: existing.claimId as string } })) break;
      // Another redelivery took the lapsed claim first: look again.
    }
    const ours: Condition = { equals: { state: 'starting', claimId } };
    return async (started) => {
      if (started) await this.store.update(key, { set: { state: 'started' }, remove: ['leaseUntil'], condition: ours, upsert: false }).catch(ignoreConditionFailed);
      else await this.store.delete(key, ours).catch(ignoreConditionFailed);
    };
  }

}

function refusal(existing: Item, deliveryId: string): ConflictError {
  return existing.state === 'starting'
    ? new BusyError(`Delivery '${deliveryId}' is being handled by another request to this trigger; retry shortly to see it refused or accepted.`)
    : new ConflictError(`Delivery '${deliveryId}' was already received by this trigger, so it starts nothing again; send a new delivery id to start the action again.`);
}


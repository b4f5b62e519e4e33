import { randomBytes } from 'node:crypto';
import type { Clock } from '../../ports/clock.ts';
import { ConditionFailedError, type Item, type Store } from '../../ports/store.ts';
import type { HookStarted, TriggerAction } from '../../schemas/triggers.ts';
import type { Actor } from '../actor.ts';
import type { BakeService } from '../bakes.ts';
import { NotFoundError, UnauthorizedError } from '../errors.ts';
import type { BakeJobs } from '../jobs/bake-jobs.ts';
import type { TargetJobs } from '../jobs/target-jobs.ts';
import { keys } from '../keys.ts';
import type { TargetService } from '../targets.ts';
import { claimedScheme, MISSING_SIGNATURE, SIGNATURE_MISMATCH, verifyHook, type HeaderLookup } from './hook-signatures.ts';
import type { SeenDeliveries } from './seen-deliveries.ts';

export interface Trigger {
  id: string;
  action: TriggerAction;
  description: string | null;
  created_at: string;
}

/** What a hook starts with: the job starts and the pipeline runner, each acting as the trigger's owner. */
export interface ActionStarters {
  targetJobs: Pick<TargetJobs, 'start'>;
  bakeJobs: Pick<BakeJobs, 'start'>;
  pipelines: { run(actor: Actor, repo: string, bake: string): Promise<{ status: string }> };
}

/** What the resources an action names are checked against when the trigger is created. */
export interface ActionTargets {
  targets: Pick<TargetService, 'getItem'>;
  bakes: Pick<BakeService, 'getItem'>;
}

export type HookOutcome = { kind: 'ping' } | ({ kind: 'started' } & Pick<HookStarted, 'action' | 'started'>);

/**
 * Inbound triggers (DESIGN.md §7a): a user's signed hook that starts a pipeline or a job when their
 * own system calls it. The secret is stored as it is: verifying an HMAC needs the key itself.
 */
export class TriggerService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly checks: ActionTargets,
    private readonly starters: ActionStarters,
    private readonly seen: SeenDeliveries,
  ) {}

  /** Creates a trigger for what the action names, which must exist for the caller now. */
  async create(actor: Actor, action: TriggerAction, description: string | null): Promise<Trigger & { secret: string }> {
    await this.checkTarget(actor, action);
    const trigger: Trigger = {
      id: `trg_${randomBytes(16).toString('hex')}`,
      action,
      description,
      created_at: this.clock.now().toISOString(),
    };
    // The Standard Webhooks secret format: whsec_ and base64 of 32 random bytes.
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    await this.store.put(
      { ...keys.trigger(trigger.id), ...keys.triggerIndex(actor.userId), gsi1sk: `${trigger.created_at}#${trigger.id}`, ...trigger, owner: actor.userId, secret },
      { exists: false },
    );
    return { ...trigger, secret };
  }

  /** The caller's triggers, oldest first, without their secrets. */
  async list(actor: Actor): Promise<Trigger[]> {
    const { items } = await this.store.query({ pk: keys.triggerIndex(actor.userId).gsi1pk, index: 'gsi1' });
    return items.map(toTrigger);
  }

  async get(actor: Actor, triggerId: string): Promise<Trigger> {
    return toTrigger(await this.owned(actor, triggerId));
  }

  /** Deletes the trigger; its hook refuses every request from then on. */
  async delete(actor: Actor, triggerId: string): Promise<void> {
    await this.owned(actor, triggerId);
    // Conditioned on the owner read above, so a concurrent delete answers 404 rather than success twice.
    try {
      await this.store.delete(keys.trigger(triggerId), { equals: { owner: actor.userId } });
    } catch (error) {
      if (error instanceof ConditionFailedError) throw notFound(triggerId);
      throw error;
    }
  }

  /**
   * Handles a call to the trigger's hook: verifies the signature over the exact body bytes, refuses
   * a delivery id seen before, and starts the action as the trigger's owner. The delivery id is
   * remembered only once the action started, so a sender may redeliver after a failed start.
   *
   * An unknown trigger is refused with the same 401 as a wrong signature: the caller learns nothing
   * about which trigger ids exist.
   */
  async fire(triggerId: string, header: HeaderLookup, body: Buffer): Promise<HookOutcome> {
    if (!claimedScheme(header)) throw new UnauthorizedError(MISSING_SIGNATURE);
    const item = await this.store.get(keys.trigger(triggerId));
    if (!item) throw new UnauthorizedError(SIGNATURE_MISMATCH);
    const hook = verifyHook(item.secret as string, header, body);
    if (hook.ping) return { kind: 'ping' };

    const { action } = toTrigger(item);
    const settle = await this.seen.claim(triggerId, hook.scheme, hook.deliveryId);
    let started: HookStarted['started'];
    try {
      started = await this.start({ userId: item.owner as string, isAdmin: false }, action);
    } catch (error) {
      await settle(false);
      throw error;
    }
    await settle(true);
    return { kind: 'started', action, started };
  }

  private async start(owner: Actor, action: TriggerAction): Promise<HookStarted['started']> {
    switch (action.type) {
      case 'pipeline': {
        const pipeline = await this.starters.pipelines.run(owner, action.repo, action.bake);
        return { kind: 'pipeline', repo: action.repo, name: action.bake, status: pipeline.status, job_id: null };
      }
      case 'bake': {
        const job = await this.starters.bakeJobs.start(owner, action.repo, action.bake);
        return { kind: 'bake', repo: action.repo, name: action.bake, status: job.status, job_id: job.job_id };
      }
      default: {
        const job = await this.starters.targetJobs.start(owner, action.repo, action.target, action.type);
        return { kind: action.type, repo: action.repo, name: action.target, status: job.status, job_id: job.job_id };
      }
    }
  }

  private async checkTarget(actor: Actor, action: TriggerAction): Promise<void> {
    if ('target' in action) await this.checks.targets.getItem(actor, action.repo, action.target);
    else await this.checks.bakes.getItem(actor, action.repo, action.bake);
  }

  private async owned(actor: Actor, triggerId: string): Promise<Item> {
    const item = await this.store.get(keys.trigger(triggerId));
    if (!item || item.owner !== actor.userId) throw notFound(triggerId);
    return item;
  }
}

function notFound(triggerId: string): NotFoundError {
  return new NotFoundError(`Trigger '${triggerId}' not found`);
}

function toTrigger(item: Item): Trigger {
  return {
    id: item.id as string,
    action: item.action as TriggerAction,
    description: (item.description as string | null) ?? null,
    created_at: item.created_at as string,
  };
}

import type { Item, Store } from '../../ports/store.ts';
import { keys } from '../keys.ts';
import type { JobRecord } from '../jobs/job-records.ts';
import { formatCheckpointName } from '../models.ts';
import type { DomainEvent, EventPublisher, EventType } from './events.ts';

/**
 * The transactional outbox of DESIGN.md §7a. A state change that others must hear about writes
 * its event in the same Store transaction as the change itself; `drain` then hands the event to
 * the publisher and to the listeners (pipelines), and deletes it only once both took it. A crash
 * anywhere leaves the event in the outbox for the next drain, which the reconciler runs, so an
 * event is never lost; ids are deterministic, so a repeated drain repeats the same event.
 */

/** The job states users hear about, and the event suffix of each. */
const REPORTED = { running: 'started', complete: 'completed', failed: 'failed' } as const;

/** The id of the event a job's move into `state` produces (one per job and state). */
export function jobEventId(jobId: number, state: string): string {
  return `evt_job_${jobId}_${state}`;
}

/**
 * The ids of the events a move into `state` may produce: a job that completes without having
 * been seen running (its platform's `running` event came late or never) also reports its start.
 */
export function jobEventIds(jobId: number, state: string): string[] {
  return state === 'complete' ? [jobEventId(jobId, 'running'), jobEventId(jobId, state)] : [jobEventId(jobId, state)];
}

/**
 * The outbox items of a job's move from `previous` to `next`, in the order they happened, so a
 * subscriber always hears `started` before `completed`.
 */
export function jobOutboxItems(previous: JobRecord, next: JobRecord): Item[] {
  if (next.state === previous.state) return [];
  const events: [DomainEvent | undefined, number][] = [];
  if (next.state === 'complete' && previous.state !== 'running') events.push([jobEventOf({ ...next, state: 'running', error: null }), next.version - 0.5]);
  events.push([jobEventOf(next), next.version]);
  return events.flatMap(([event, sequence]) => (event ? [outboxItem(event, sequence)] : []));
}

/**
 * The event a job produces on reaching its current state, or undefined when there is none to
 * report: samplers serve every user and are nobody's resource, a trainer's run reports for it
 * (core/training), and queued/submitted are internal.
 */
export function jobEventOf(job: JobRecord): DomainEvent | undefined {
  if (job.kind === 'sampler' || job.kind === 'trainer' || !(job.state in REPORTED)) return undefined;
  const suffix = REPORTED[job.state as keyof typeof REPORTED];
  const { userId, repo, name } = job.owner;
  const data: Record<string, unknown> = {
    repo,
    ...(job.kind === 'bake' ? { bake: name } : { target: name }),
    job_id: job.job_id,
    status: job.state,
    error: job.error,
  };
  if (job.kind === 'bake') {
    const steps = job.state === 'complete' ? [...(job.checkpoints ?? [])].sort((a, b) => b - a) : [];
    data.model_names = steps.map((step) => formatCheckpointName({ userId, repo, bake: name, step }));
    data.loss = job.state === 'complete' ? (job.loss ?? null) : null;
  }
  return { id: jobEventId(job.job_id, job.state), userId, type: `${job.kind}.${suffix}` as EventType, timestamp: job.updated_at, data };
}

/**
 * The outbox item holding an event until it is published. `sequence` orders the events of one
 * resource that share a timestamp (a job's version), so leftovers are published in the order
 * they happened.
 */
export function outboxItem(event: DomainEvent, sequence: number): Item {
  return { ...keys.outboxEvent(event.id), event, sequence };
}

/** Takes every drained event after the publisher did; must be idempotent (a re-drain repeats it). */
export type OutboxListener = (event: DomainEvent) => Promise<void>;

export class EventOutbox {
  constructor(
    private readonly store: Store,
    private readonly publisher: EventPublisher,
    private readonly listener: OutboxListener,
  ) {}

  /**
   * Publishes the named events, or every event left in the outbox when none are named. Never
   * throws: an event that cannot be published now stays for the next drain.
   */
  async drain(eventIds?: string[]): Promise<void> {
    let items: Item[];
    try {
      items = eventIds ? await this.read(eventIds) : inOrder((await this.store.query(keys.outboxPartition)).items);
    } catch (error) {
      console.error(JSON.stringify({ level: 'warn', msg: 'outbox not read; the next drain retries', error: String(error) }));
      return;
    }
    for (const item of items) await this.deliver(item.event as DomainEvent);
  }

  private async read(eventIds: string[]): Promise<Item[]> {
    const items = await Promise.all(eventIds.map((id) => this.store.get(keys.outboxEvent(id))));
    return items.filter((item): item is Item => item !== undefined);
  }

  private async deliver(event: DomainEvent): Promise<void> {
    try {
      await this.publisher.publish(event);
      await this.listener(event);
      await this.store.delete(keys.outboxEvent(event.id));
    } catch (error) {
      console.error(JSON.stringify({ level: 'warn', msg: 'event not published; the next drain retries', eventId: event.id, error: String(error) }));
    }
  }
}

function inOrder(items: Item[]): Item[] {
  const at = (item: Item) => (item.event as DomainEvent).timestamp;
  return [...items].sort((a, b) => at(a).localeCompare(at(b)) || (a.sequence as number) - (b.sequence as number));
}

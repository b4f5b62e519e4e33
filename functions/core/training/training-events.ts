/**
 * The lifecycle events of training runs and checkpoints (DESIGN.md §7a; payloads in
 * functions/schemas/events.ts). Each is written to the outbox in the same transaction as the
 * change it reports, and its id is derived from that change, so a repeated write repeats the
 * same event.
 *
 * `run.ready` is sent each time a trainer of the run becomes ready (after a scale to zero too);
 * `run.stopped` only when the run is deactivated: scaling to zero after idling is not a stop,
 * since the run keeps taking operations.
 */
import { createHash } from 'node:crypto';
import type { Item } from '../../ports/store.ts';
import { outboxItem } from '../events/job-events.ts';
import type { DomainEvent } from '../events/events.ts';
import type { TrainingCheckpoint } from './model.ts';

type RunEventType = 'run.created' | 'run.ready' | 'run.stopped' | 'run.failed';

/** The status each run event reports: the run's status name, or the deployment status it reached. */
const STATUS: Record<RunEventType, string> = { 'run.created': 'ACTIVE', 'run.ready': 'RUNNING', 'run.stopped': 'INACTIVE', 'run.failed': 'FAILED' };

/** `occurrence` tells apart events of one type that a run may have several of (one `run.ready` per trainer job). */
export function runEvent(run: Item, type: RunEventType, at: string, occurrence?: number): DomainEvent {
  const suffix = type.slice('run.'.length) + (occurrence === undefined ? '' : `_${occurrence}`);
  return {
    id: `evt_run_${run.id as string}_${suffix}`,
    userId: run.user_id as string,
    type,
    timestamp: at,
    data: { run_id: run.id, base_model: run.base_model, status: STATUS[type], error: type === 'run.failed' ? (run.error ?? null) : null },
  };
}

/** One event per save operation that wrote the checkpoint (a name can be saved over). */
export function checkpointSavedEvent(checkpoint: TrainingCheckpoint, operationId: string): DomainEvent {
  const occurrence = createHash('sha256').update(`${checkpoint.runId}\u0000${operationId}`).digest('hex').slice(0, 20);
  return {
    id: `evt_checkpoint_${checkpoint.id}_${occurrence}`,
    userId: checkpoint.userId,
    type: 'checkpoint.saved',
    timestamp: checkpoint.createdAt,
    data: { run_id: checkpoint.runId, checkpoint_id: checkpoint.name, target: checkpoint.target, path: checkpoint.path, created_at: checkpoint.createdAt },
  };
}

export function eventOutboxOp(event: DomainEvent) {
  return { kind: 'put' as const, item: outboxItem(event, 0) };
}

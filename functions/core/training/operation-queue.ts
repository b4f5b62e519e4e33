import { createHash, randomBytes } from 'node:crypto';
import type { Blobs } from '../../ports/blobs.ts';
import type { Clock } from '../../ports/clock.ts';
import { ignoreConditionFailed, TransactionFailedError, type Condition, type Item, type Store, type TransactOp } from '../../ports/store.ts';
import type { HeldOperation, Normalization, TrainerOperation } from '../../schemas/trainer.ts';
import { Wakeups } from '../chat/wakeups.ts';
import { IdempotencyConflictError, ValidationError } from '../errors.ts';
import { keys } from '../keys.ts';
import { saveOfTarget } from './checkpoint-paths.ts';
import type { AnsweredOperation, CheckpointTarget, OperationView } from './model.ts';
import { assertActive, runKey } from './run-records.ts';

/** Bodies and results larger than this go to Blobs (a Store item holds at most 400 KB). */
const MAX_INLINE_BYTES = 256 * 1024;

/** Under the artifact bucket's tmp/ lifecycle on AWS, so a body or result left behind still expires. */
const bodyBlobKey = (runId: string) => `tmp/training/${runId}/operations/${randomBytes(12).toString('hex')}.json`;

/** `parked`: carries a client sequence number whose predecessor has not arrived; it enters the queue when that one has. */
export type OperationState = 'parked' | 'pending' | 'held' | 'done' | 'error';

export interface Accepted {
  operationId: string;
  seq: number;
}

/** Client sequence numbers of a run start here. */
const FIRST_CLIENT_SEQ = 1;

/** What an operation's end records: the result, or the error with its Python-style class. */
export type Outcome = { status: 'done'; result: Record<string, unknown> } | { status: 'error'; error: string; errorClass: string };

const runTopic = (runId: string) => `run:${runId}`;
const operationTopic = (runId: string, operationId: string) => `operation:${runId}:${operationId}`;

/**
 * The Store side of the trainer relay (functions/schemas/trainer.ts): one ordered queue per run.
 * An accepted operation is an item plus a queue entry under the next sequence number of its run,
 * written in one transaction with the run's counter, so numbers are contiguous and a duplicate
 * idempotency key never takes one. The trainer takes the oldest entry (deleting it is the claim)
 * and the run records the one operation it holds until its result is posted.
 */
export class OperationQueue {
  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly clock: Clock,
    private readonly settings: { pollMs: number; resultRetainS: number; sequenceGapS: number },
    private readonly wakeups = new Wakeups(),
  ) {}

  /** Waits until the run's queue may have changed: a poll interval at most. */
  untilRunChanges(runId: string, signal?: AbortSignal): Promise<void> {
    return this.wakeups.wait(runTopic(runId), this.settings.pollMs, signal);
  }

  untilOperationChanges(runId: string, operationId: string, signal?: AbortSignal): Promise<void> {
    return this.wakeups.wait(operationTopic(runId, operationId), this.settings.pollMs, signal);
  }

  /** Wakes the run's trainer, if it waits in this process (deactivation ends its long poll). */
  notifyRun(runId: string): void {
    this.wakeups.notify(runTopic(runId));
  }

  get(runId: string, operationId: string): Promise<Item | undefined> {
    return this.store.get(keys.trainingOperation(runId, operationId));
  }

  /**
   * Accepts an operation under `operationId`, or answers with the one already accepted under it
   * when it is the same request (`digest`); another request under that id is a conflict.
   * `attributes` are kept on the item for whoever handles the result (a save's checkpoint).
   */
  async accept(runId: string, operationId: string, digest: string, operation: TrainerOperation, attributes: Record<string, unknown>): Promise<Accepted> {
    const existing = await this.get(runId, operationId);
    if (existing) return sameRequest(existing, digest);
    const body = JSON.stringify(operation);
    const blob = Buffer.byteLength(body) > MAX_INLINE_BYTES ? bodyBlobKey(runId) : undefined;
    if (blob) await this.blobs.put(blob, body, 'application/json');
    for (;;) {
      const run = await this.store.get(runKey(runId));
      if (!run) throw new Error(`Run ${runId} vanished while an operation was accepted`);
      try {
        assertActive(run);
      } catch (error) {
        if (blob) await this.blobs.deletePrefix(blob);
        throw error;
      }
      const seq = (run.op_seq as number) + 1;
      const now = this.clock.now();
      try {
        await this.store.transact([
          {
            kind: 'update',
            key: runKey(runId),
            update: { set: { op_seq: seq, last_activity_at: now.getTime() }, condition: { equals: { op_seq: seq - 1, state: 'active' } }, upsert: false },
          },
          {
            kind: 'put',
            item: {
              ...keys.trainingOperation(runId, operationId),
              operation_id: operationId,
              run_id: runId,
              seq,
              kind: operation.kind,
              digest,
              state: 'pending' satisfies OperationState,
              ...(blob ? { body_blob: blob } : { body }),
              ...attributes,
              accepted_at: now.toISOString(),
            },
            condition: { exists: false },
          },
          { kind: 'put', item: { ...keys.trainingQueueEntry(runId, seq), operation_id: operationId } },
        ]);
      } catch (error) {
        if (!(error instanceof TransactionFailedError)) throw error;
        if (error.failedOps.includes(1)) {
          // Another submit with the same key won the race.
          if (blob) await this.blobs.deletePrefix(blob);
          const winner = await this.get(runId, operationId);
          if (winner) return sameRequest(winner, digest);
        }
        // Another operation took this number (or the run stopped): read the run again.
        continue;
      }
      this.wakeups.notify(runTopic(runId));
      return { operationId, seq };
    }
  }

  /**
   * Parks an operation under its client sequence number, then moves every parked operation whose
   * predecessors have all entered the queue into it, in client order: the client may send them
   * in any order (Tinker sends a batch's first chunk last) and they still run in its order.
   */
  async acceptInOrder(runId: string, operationId: string, digest: string, operation: TrainerOperation, attributes: Record<string, unknown>, clientSeq: number): Promise<{ operationId: string }> {
    const existing = await this.get(runId, operationId);
    if (existing) return sameRequest(existing, digest);
    const body = JSON.stringify(operation);
    const blob = Buffer.byteLength(body) > MAX_INLINE_BYTES ? bodyBlobKey(runId) : undefined;
    if (blob) await this.blobs.put(blob, body, 'application/json');
    const stored = { ...attributes, ...(blob ? { body_blob: blob } : { body }) };
    const discard = async () => {
      if (blob) await this.blobs.deletePrefix(blob);
    };
    const run = await this.store.get(runKey(runId));
    if (!run) throw new Error(`Run ${runId} vanished while an operation was accepted`);
    try {
      assertActive(run);
      if (!Number.isInteger(clientSeq) || clientSeq < FIRST_CLIENT_SEQ) throw new ValidationError(`The sequence number must be a whole number from ${FIRST_CLIENT_SEQ}; got ${clientSeq}.`);
      if (clientSeq < nextClientSeq(run)) {
        throw new ValidationError(`Sequence number ${clientSeq} was already used on run ${runId}; number each new operation after the last one sent.`);
      }
    } catch (error) {
      await discard();
      throw error;
    }
    const now = this.clock.now();
    try {
      await this.store.transact([
        {
          kind: 'put',
          item: {
            ...keys.trainingOperation(runId, operationId),
            operation_id: operationId,
            run_id: runId,
            client_seq: clientSeq,
            kind: operation.kind,
            digest,
            state: 'parked' satisfies OperationState,
            ...stored,
            accepted_at: now.toISOString(),
            parked_at: now.getTime(),
          },
          condition: { exists: false },
        },
        { kind: 'put', item: { ...keys.trainingParkedEntry(runId, clientSeq), operation_id: operationId }, condition: { exists: false } },
        { kind: 'update', key: runKey(runId), update: { set: { last_activity_at: now.getTime() }, condition: { equals: { state: 'active' } }, upsert: false } },
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      await discard();
      const winner = await this.get(runId, operationId);
      if (error.failedOps.includes(0) && winner) return sameRequest(winner, digest);
      if (error.failedOps.includes(1)) {
        throw new ValidationError(`Sequence number ${clientSeq} was already used on run ${runId} by another operation; number each new operation after the last one sent.`);
      }
      assertActive((await this.store.get(runKey(runId))) ?? run);
      throw error;
    }
    await this.release(runId);
    return { operationId };
  }

  /** Moves parked operations into the queue while the next one in client order is there. */
  private async release(runId: string): Promise<void> {
    for (;;) {
      const run = await this.store.get(runKey(runId));
      if (run?.state !== 'active') return;
      const clientSeq = nextClientSeq(run);
      const entry = await this.store.get(keys.trainingParkedEntry(runId, clientSeq));
      if (!entry) return;
      const operationId = entry.operation_id as string;
      const seq = (run.op_seq as number) + 1;
      const counters: Condition =
        run.client_seq_next === undefined ? { equals: { op_seq: seq - 1, state: 'active' }, absent: ['client_seq_next'] } : { equals: { op_seq: seq - 1, state: 'active', client_seq_next: clientSeq } };
      try {
        await this.store.transact([
          { kind: 'update', key: runKey(runId), update: { set: { op_seq: seq, client_seq_next: clientSeq + 1 }, condition: counters, upsert: false } },
          { kind: 'update', key: keys.trainingOperation(runId, operationId), update: { set: { state: 'pending' satisfies OperationState, seq }, condition: { equals: { state: 'parked' } }, upsert: false } },
          { kind: 'delete', key: entry, condition: { exists: true } },
          { kind: 'put', item: { ...keys.trainingQueueEntry(runId, seq), operation_id: operationId } },
        ]);
      } catch (error) {
        if (!(error instanceof TransactionFailedError)) throw error;
        // An entry whose operation is no longer parked would stop the run's order for good.
        if (error.failedOps.includes(1) && (await this.get(runId, operationId))?.state !== 'parked') await this.store.delete(entry);
        // Otherwise another submit moved it, or took the queue number: read the run again.
        continue;
      }
      this.wakeups.notify(runTopic(runId));
    }
  }

  /**
   * Fails a parked operation that has waited longer than `sequenceGapS` for a predecessor that
   * never came (the client lost it): the client hears why instead of waiting for ever. False when
   * the item was left as it is (so it need not be read again).
   */
  async failIfGapTooOld(item: Item): Promise<boolean> {
    if (item.state !== 'parked' || (item.parked_at as number) + this.settings.sequenceGapS * 1000 > this.clock.now().getTime()) return false;
    const runId = item.run_id as string;
    const operationId = item.operation_id as string;
    const run = await this.store.get(runKey(runId));
    const missing = run ? nextClientSeq(run) : FIRST_CLIENT_SEQ;
    const error =
      `Operation ${operationId} (sequence number ${item.client_seq as number}) waited more than ${this.settings.sequenceGapS} s for sequence number ${missing}, ` +
      'which never arrived; send the missing operation again, or start a new run.';
    try {
      await this.store.transact([
        { kind: 'update', key: keys.trainingOperation(runId, operationId), update: { set: await this.ended(runId, operationId, { status: 'error', error, errorClass: 'ValueError' }), condition: { equals: { state: 'parked' } }, upsert: false } },
        { kind: 'delete', key: keys.trainingParkedEntry(runId, item.client_seq as number), condition: { exists: true } },
      ]);
    } catch (failure) {
      if (!(failure instanceof TransactionFailedError)) throw failure;
      // Released or ended meanwhile: that stands.
      return true;
    }
    await this.afterEnd(runId, operationId, item);
    return true;
  }

  /** The operation the job holds, handed out again (the trainer asked without answering it). */
  async heldBy(run: Item, jobId: number): Promise<HeldOperation | undefined> {
    if (typeof run.held_op_id !== 'string' || run.held_by !== jobId) return undefined;
    const item = await this.get(run.id as string, run.held_op_id);
    return item?.state === 'held' && item.held_by === jobId ? this.handOut(item) : undefined;
  }

  /**
   * Hands the oldest waiting operation of the run to the job, if the job is still the run's
   * trainer and holds nothing; undefined when there is none to take.
   */
  async take(runId: string, jobId: number): Promise<HeldOperation | undefined> {
    for (;;) {
      const { items } = await this.store.query({ ...keys.trainingQueue(runId), limit: 1 });
      const entry = items[0];
      if (!entry) return undefined;
      const operationId = entry.operation_id as string;
      try {
        await this.store.transact([
          { kind: 'delete', key: entry, condition: { exists: true } },
          {
            kind: 'update',
            key: keys.trainingOperation(runId, operationId),
            update: { set: { state: 'held' satisfies OperationState, held_by: jobId }, condition: { equals: { state: 'pending' } }, upsert: false },
          },
          {
            kind: 'update',
            key: runKey(runId),
            update: { set: { held_op_id: operationId, held_by: jobId }, condition: { equals: { trainer_job_id: jobId, state: 'active' }, absent: ['held_op_id'] }, upsert: false },
          },
        ]);
      } catch (error) {
        if (!(error instanceof TransactionFailedError)) throw error;
        if (error.failedOps.includes(2)) return undefined;
        // Taken by a racing call, or its operation ended while it waited (expired, failed): next one.
        if (!error.failedOps.includes(0)) await this.store.delete(entry);
        continue;
      }
      const item = await this.get(runId, operationId);
      if (item) return this.handOut(item);
    }
  }

  /** Whether operations wait for a trainer. */
  async hasWaiting(runId: string): Promise<boolean> {
    const { items } = await this.store.query({ ...keys.trainingQueue(runId), limit: 1 });
    return items.length > 0;
  }

  /**
   * Records the end of an operation the job holds, with `alongside` in the same transaction (a
   * save's event), and frees the run for its next one. False when the job no longer holds it;
   * a repeat of an end already recorded is true and changes nothing.
   */
  async finish(runId: string, operationId: string, jobId: number, outcome: Outcome, alongside: TransactOp[] = []): Promise<boolean> {
    const item = await this.get(runId, operationId);
    if (!item) return false;
    if (item.state === 'done' || item.state === 'error') return true;
    if (item.state !== 'held' || item.held_by !== jobId) return false;
    const ended = await this.ended(runId, operationId, outcome);
    try {
      await this.store.transact([
        { kind: 'update', key: keys.trainingOperation(runId, operationId), update: { set: ended, remove: ['held_by'], condition: { equals: { state: 'held', held_by: jobId } }, upsert: false } },
        { kind: 'update', key: runKey(runId), update: { remove: ['held_op_id', 'held_by'], condition: { equals: { held_op_id: operationId } }, upsert: false } },
        ...alongside,
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      if (typeof ended.result_blob === 'string') await this.blobs.deletePrefix(ended.result_blob);
      const now = await this.get(runId, operationId);
      return now?.state === 'done' || now?.state === 'error';
    }
    await this.afterEnd(runId, operationId, item);
    return true;
  }

  /**
   * Ends every operation of the run not yet answered with the same error: the one its trainer
   * held, then those waiting, in order (the run failed or was deactivated).
   */
  async failOutstanding(runId: string, error: string, errorClass: string): Promise<void> {
    const run = await this.store.get(runKey(runId));
    if (run) await this.failHeld(run, error, errorClass);
    const { items } = await this.store.query(keys.trainingQueue(runId));
    for (const entry of items) {
      await this.store.delete(entry);
      await this.failOne(runId, entry.operation_id as string, 'pending', error, errorClass);
    }
    for (const entry of (await this.store.query(keys.trainingParked(runId))).items) {
      await this.store.delete(entry);
      await this.failOne(runId, entry.operation_id as string, 'parked', error, errorClass);
    }
  }

  /** Fails the operation the run's ended trainer held when it stopped (it never answered it). */
  async failHeld(run: Item, error: string, errorClass: string): Promise<void> {
    if (typeof run.held_op_id !== 'string') return;
    await this.failOne(run.id as string, run.held_op_id, 'held', error, errorClass);
    await this.store
      .update(runKey(run.id as string), { remove: ['held_op_id', 'held_by'], condition: { equals: { held_op_id: run.held_op_id } }, upsert: false })
      .catch(ignoreConditionFailed);
  }

  /** What a poll sees of the operation. */
  async view(item: Item): Promise<OperationView> {
    if (item.state === 'error') return { status: 'error', error: item.error as string, errorClass: item.error_class as string };
    if (item.state !== 'done') return { status: 'pending' };
    const operation = answeredOperation(item);
    if (typeof item.result_blob !== 'string') return { status: 'done', result: item.result as Record<string, unknown>, operation };
    const bytes = await this.blobs.get(item.result_blob);
    if (!bytes) throw new Error(`The result of operation ${item.operation_id as string} is missing from Blobs`);
    return { status: 'done', result: JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>, operation };
  }

  private async failOne(runId: string, operationId: string, from: OperationState, error: string, errorClass: string): Promise<void> {
    const item = await this.get(runId, operationId);
    if (item?.state !== from) return;
    try {
      await this.store.update(keys.trainingOperation(runId, operationId), {
        set: await this.ended(runId, operationId, { status: 'error', error, errorClass }),
        remove: ['held_by'],
        condition: { equals: { state: from } },
        upsert: false,
      });
    } catch (failure) {
      // Answered or ended meanwhile: that end stands.
      ignoreConditionFailed(failure);
      return;
    }
    await this.afterEnd(runId, operationId, item);
  }

  /** The attributes of an ended operation; a large result goes to Blobs first. */
  private async ended(runId: string, operationId: string, outcome: Outcome): Promise<Record<string, unknown>> {
    const now = this.clock.now();
    const common = { done_at: now.toISOString(), ttl: Math.floor(now.getTime() / 1000) + this.settings.resultRetainS };
    if (outcome.status === 'error') return { ...common, state: 'error' satisfies OperationState, error: outcome.error, error_class: outcome.errorClass };
    const result = JSON.stringify(outcome.result);
    if (Buffer.byteLength(result) <= MAX_INLINE_BYTES) return { ...common, state: 'done' satisfies OperationState, result: outcome.result };
    const key = `tmp/training/${runId}/results/${createHash('sha256').update(operationId).digest('hex')}.json`;
    await this.blobs.put(key, result, 'application/json');
    return { ...common, state: 'done' satisfies OperationState, result_blob: key };
  }

  private async afterEnd(runId: string, operationId: string, item: Item): Promise<void> {
    this.wakeups.notify(operationTopic(runId, operationId));
    this.wakeups.notify(runTopic(runId));
    if (typeof item.body_blob === 'string') await this.blobs.deletePrefix(item.body_blob);
  }

  private async handOut(item: Item): Promise<HeldOperation> {
    const body = typeof item.body === 'string' ? item.body : await this.bodyFromBlob(item);
    return { id: item.operation_id as string, seq: item.seq as number, operation: JSON.parse(body) as TrainerOperation };
  }

  private async bodyFromBlob(item: Item): Promise<string> {
    const bytes = await this.blobs.get(item.body_blob as string);
    if (!bytes) throw new Error(`The body of operation ${item.operation_id as string} is missing from Blobs`);
    return Buffer.from(bytes).toString('utf8');
  }
}

/** The operation an item answers, from what accepting it kept: its kind, a forward's normalization, a save's target. */
function answeredOperation(item: Item): AnsweredOperation {
  const kind = item.kind as TrainerOperation['kind'];
  if (kind === 'forward') return { kind, normalization: item.normalization as Normalization };
  if (kind === 'save') return { kind, what: saveOfTarget((item.save as { target: CheckpointTarget }).target) };
  return { kind };
}

function nextClientSeq(run: Item): number {
  return (run.client_seq_next as number | undefined) ?? FIRST_CLIENT_SEQ;
}

function sameRequest(existing: Item, digest: string): Accepted {
  if (existing.digest !== digest) {
    throw new IdempotencyConflictError(
      `Idempotency key '${existing.operation_id as string}' was already used for a different operation on this run; send a new key for a new operation.`,
    );
  }
  return { operationId: existing.operation_id as string, seq: existing.seq as number };
}

import type { Blobs } from '../../ports/blobs.ts';
import type { Clock } from '../../ports/clock.ts';
import { ConditionFailedError, TransactionFailedError, type Item, type Store } from '../../ports/store.ts';
import { RelayChunk, SamplerRequest } from '../../schemas/relay.ts';
import { NotFoundError, RateLimitedError } from '../errors.ts';
import { keys } from '../keys.ts';
import { Wakeups } from './wakeups.ts';

/**
 * Requests and their answers are working data: gone a day after they were asked (the training
 * protocols keep a sample's result at least 1 h, loops-data-plane.md §6.3).
 */
const RETAIN_S = 24 * 60 * 60;
/** Bodies and chunks larger than this go to Blobs (a Store item holds at most 400 KB). */
const MAX_INLINE_BODY_BYTES = 256 * 1024;
/** How many requests may wait in one base model's inbox before new ones are refused (`BAKEHOUSE_SAMPLER_MAX_QUEUED`). */
const DEFAULT_MAX_QUEUED = 256;
/** What a refused asker is told to wait: about the time a sampler takes to work through a few batches. */
const QUEUE_FULL_RETRY_AFTER_S = 5;
/** Under the artifact bucket's tmp/ lifecycle on AWS, so a body left behind still expires. */
const bodyBlobKey = (requestId: string) => `tmp/chat/${requestId}.json`;
const chunkBlobKey = (requestId: string, seq: number) => `tmp/chat/${requestId}.chunks/${seq}.json`;

export type ChatRequestState = 'pending' | 'taken' | 'cancelled';

export interface ChatRequestStatus {
  state: ChatRequestState;
  /** How many times a sampler has taken it. */
  attempt: number;
  /** The sampler job that took it, and when (epoch ms). */
  samplerJobId?: number;
  takenAt?: number;
  /** Why it was cancelled, when the API gave up on it rather than the asker going away. */
  cancelReason?: string;
  /** What the submitter stored with it (`submit`'s `meta`, as updated by `annotate`). */
  meta: Record<string, unknown>;
}

/** When a sampler last asked for requests: it had finished every batch it took before then. */
export interface SamplerPoll {
  samplerJobId: number;
  at: number;
}

/**
 * A sampler knows a request by its id and attempt (`chatcmpl-….2`, `sample-….1`), so that chunks
 * of an attempt given up on are refused rather than mixed into the next one.
 */
const ATTEMPT_ID = /^((?:chatcmpl|sample)-[0-9a-f]+)\.(\d+)$/;
const attemptId = (requestId: string, attempt: number) => `${requestId}.${attempt}`;

const inboxTopic = (baseModel: string) => `inbox:${baseModel}`;
const requestTopic = (requestId: string) => `request:${requestId}`;

/**
 * The Store side of the sampler relay (functions/schemas/relay.ts). A request is an item plus an
 * entry in its base model's inbox; a sampler takes inbox entries oldest first (deleting one is
 * the claim, so each is taken once) and posts numbered chunks, each its own item, which the chat
 * route reads in order. A request whose hand-out was lost on the way goes back to its place in
 * the inbox as a new attempt (`requeue`).
 */
export class ChatRelay {
  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly clock: Clock,
    /** How often a poll loop (a sampler's long poll, a reply waiting for chunks) looks again. */
    private readonly pollMs: number,
    /** Waiting requests per base model past which `submit` refuses new ones. */
    private readonly maxQueued = DEFAULT_MAX_QUEUED,
    private readonly wakeups = new Wakeups(),
  ) {}

  /** Waits until the base model's inbox may have changed: a poll interval at most. */
  untilInboxChanges(baseModel: string, signal?: AbortSignal): Promise<void> {
    return this.wakeups.wait(inboxTopic(baseModel), this.pollMs, signal);
  }

  /** Waits until the request may have a new chunk or state: a poll interval at most. */
  untilRequestChanges(requestId: string, signal?: AbortSignal): Promise<void> {
    return this.wakeups.wait(requestTopic(requestId), this.pollMs, signal);
  }

  /**
   * Queues the request for its base model's sampler. Returns false, queuing nothing, when a request
   * with its id exists already (a submit that deduplicates by id). `meta` is kept with the request
   * for the submitter (`status`). Throws `RateLimitedError` while the inbox holds `maxQueued`
   * requests: that many already wait for a sampler.
   */
  async submit(request: SamplerRequest, meta: Record<string, unknown> = {}): Promise<boolean> {
    await this.refuseWhenFull(request.model.base_model);
    const now = this.clock.now();
    const ttl = Math.floor(now.getTime() / 1000) + RETAIN_S;
    const body = JSON.stringify(request);
    const inline = Buffer.byteLength(body) <= MAX_INLINE_BODY_BYTES;
    if (!inline) await this.blobs.put(bodyBlobKey(request.id), body, 'application/json');
    const inbox = keys.chatInbox(request.model.base_model);
    const inboxKey = { pk: inbox.pk, sk: `${inbox.skPrefix}${now.toISOString()}#${request.id}` };
    try {
      await this.store.transact([
        {
          kind: 'put',
          item: {
            ...keys.chatRequest(request.id),
            state: 'pending' satisfies ChatRequestState,
            attempt: 0,
            inbox_sk: inboxKey.sk,
            ...(inline ? { body } : { body_blob: bodyBlobKey(request.id) }),
            meta,
            ttl,
          },
          condition: { exists: false },
        },
        { kind: 'put', item: { ...inboxKey, request_id: request.id, ttl } },
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedOps.includes(0)) return false;
      throw error;
    }
    this.wakeups.notify(inboxTopic(request.model.base_model));
    return true;
  }

  /**
   * Counts the inbox with a query capped at the limit rather than a counter item: the count stays
   * exact when entries expire by TTL (which no counter would see), costs one read of at most
   * `maxQueued` small items, and the claim stays a plain delete. Concurrent submits may each see
   * room and overshoot by a few; the limit is for backpressure, not an exact quota.
   */
  private async refuseWhenFull(baseModel: string): Promise<void> {
    const { items } = await this.store.query({ ...keys.chatInbox(baseModel), limit: this.maxQueued });
    if (items.length < this.maxQueued) return;
    throw new RateLimitedError(
      `${this.maxQueued} requests are already waiting for the ${baseModel} sampler; retry in ${QUEUE_FULL_RETRY_AFTER_S} s.`,
      QUEUE_FULL_RETRY_AFTER_S,
    );
  }

  /** Merges `meta` into what the submitter keeps with the request. */
  async annotate(requestId: string, meta: Record<string, unknown>): Promise<void> {
    const item = await this.store.get(keys.chatRequest(requestId));
    if (!item) return;
    await this.store.update(keys.chatRequest(requestId), { set: { meta: { ...(item.meta as Record<string, unknown>), ...meta } }, upsert: false });
  }

  /** Long poll: the first requests to arrive within `waitS`, or none. */
  async next(baseModel: string, samplerJobId: number, options: { waitS: number; max: number }, signal?: AbortSignal): Promise<SamplerRequest[]> {
    const deadline = Date.now() + options.waitS * 1000;
    await this.store.update(keys.sampler(baseModel), { set: { polled_by: samplerJobId, polled_at: this.clock.now().getTime() }, upsert: false });
    for (;;) {
      const taken = await this.take(baseModel, samplerJobId, options.max);
      if (taken.length > 0 || Date.now() >= deadline) return taken;
      await this.untilInboxChanges(baseModel, signal);
      // The sampler hung up (or the server is closing): take nothing it would never receive.
      if (signal?.aborted) return [];
    }
  }

  /** Hands out up to `max` waiting requests of the base model to the sampler job, oldest first. */
  async take(baseModel: string, samplerJobId: number, max: number): Promise<SamplerRequest[]> {
    const { items } = await this.store.query({ ...keys.chatInbox(baseModel), limit: max });
    const taken: SamplerRequest[] = [];
    for (const entry of items) {
      // Deleting the entry is the claim: of two samplers racing for it, only one gets it back.
      if (!(await this.store.delete(entry))) continue;
      const requestId = entry.request_id as string;
      const item = await this.markTaken(requestId, samplerJobId);
      if (item) taken.push({ ...(await this.body(item)), id: attemptId(requestId, item.attempt as number) });
    }
    return taken;
  }

  /**
   * Stores a chunk from the request's sampler; a repeated `seq` (a retried post) is kept once.
   * Returns whether the asker has gone, or the attempt was handed out again: either way the
   * sampler should stop generating it.
   */
  async postChunk(samplerRequestId: string, samplerJobId: number, chunk: RelayChunk): Promise<{ cancelled: boolean }> {
    const [, requestId = '', attempt] = ATTEMPT_ID.exec(samplerRequestId) ?? [];
    const request = await this.store.get(keys.chatRequest(requestId));
    if (!request || request.sampler_job_id !== samplerJobId) throw new NotFoundError(`No request ${samplerRequestId} for this sampler`);
    try {
      const text = JSON.stringify(chunk);
      const inline = Buffer.byteLength(text) <= MAX_INLINE_BODY_BYTES;
      // A token-level answer can run to megabytes; a retried post rewrites the same blob.
      if (!inline) await this.blobs.put(chunkBlobKey(requestId, chunk.seq), text, 'application/json');
      const stored = inline ? { chunk } : { chunk_blob: chunkBlobKey(requestId, chunk.seq) };
      // Stored only while this attempt is the request's, so a re-queue and a late chunk cannot both win.
      await this.store.transact([
        { kind: 'check', key: keys.chatRequest(requestId), condition: { equals: { attempt: Number(attempt), sampler_job_id: samplerJobId } } },
        { kind: 'put', item: { ...keys.chatChunk(requestId, chunk.seq), ...stored, ttl: request.ttl as number }, condition: { exists: false } },
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      if (error.failedOps.includes(0)) return { cancelled: true };
    }
    this.wakeups.notify(requestTopic(requestId));
    if ((chunk.done || chunk.sampled || chunk.error) && request.body_blob) await this.blobs.deletePrefix(request.body_blob as string);
    return { cancelled: request.state === 'cancelled' };
  }

  /** The chunk numbered `seq`, once its sampler has posted it. */
  async chunk(requestId: string, seq: number): Promise<RelayChunk | undefined> {
    const item = await this.store.get(keys.chatChunk(requestId, seq));
    if (!item) return undefined;
    if (item.chunk_blob === undefined) return RelayChunk.parse(item.chunk);
    const bytes = await this.blobs.get(item.chunk_blob as string);
    if (!bytes) throw new Error(`Chunk ${seq} of request ${requestId} is missing from Blobs`);
    return RelayChunk.parse(JSON.parse(Buffer.from(bytes).toString('utf8')));
  }

  async status(requestId: string): Promise<ChatRequestStatus | undefined> {
    const item = await this.store.get(keys.chatRequest(requestId));
    if (!item) return undefined;
    const taken = item.state === 'taken' ? { samplerJobId: item.sampler_job_id as number, takenAt: item.taken_at as number } : {};
    const reason = typeof item.cancel_reason === 'string' ? { cancelReason: item.cancel_reason } : {};
    return { state: item.state as ChatRequestState, attempt: item.attempt as number, ...taken, ...reason, meta: (item.meta as Record<string, unknown> | undefined) ?? {} };
  }

  /** The base model's last poll for requests, if any sampler has asked. */
  async lastPoll(baseModel: string): Promise<SamplerPoll | undefined> {
    const slot = await this.store.get(keys.sampler(baseModel));
    return typeof slot?.polled_by === 'number' ? { samplerJobId: slot.polled_by, at: slot.polled_at as number } : undefined;
  }

  /**
   * Puts a taken request back in its place in the inbox, as a new attempt, unless it moved on
   * meanwhile (answered, cancelled, or already re-queued).
   */
  async requeue(requestId: string, baseModel: string, attempt: number): Promise<void> {
    const item = await this.store.get(keys.chatRequest(requestId));
    if (!item) return;
    try {
      await this.store.transact([
        {
          kind: 'update',
          key: keys.chatRequest(requestId),
          update: { set: { state: 'pending' }, remove: ['sampler_job_id', 'taken_at'], condition: { equals: { state: 'taken', attempt } }, upsert: false },
        },
        // A first chunk that arrived meanwhile means the sampler did get it after all.
        { kind: 'check', key: keys.chatChunk(requestId, 0), condition: { exists: false } },
        { kind: 'put', item: { pk: keys.chatInbox(baseModel).pk, sk: item.inbox_sk as string, request_id: requestId, ttl: item.ttl as number } },
      ]);
    } catch (error) {
      if (!(error instanceof TransactionFailedError)) throw error;
      return;
    }
    this.wakeups.notify(inboxTopic(baseModel));
  }

  /**
   * Nobody waits for the answer any more: a waiting request leaves the inbox, a taken one is
   * stopped. `reason`, when the API gives up on it, is kept for whoever asks about it later.
   */
  async cancel(requestId: string, baseModel: string, reason?: string): Promise<void> {
    const key = keys.chatRequest(requestId);
    const item = await this.store.get(key);
    if (!item || item.state === 'cancelled') return;
    await this.store.update(key, { set: { state: 'cancelled', ...(reason === undefined ? {} : { cancel_reason: reason }) }, upsert: false });
    if (item.state === 'pending') await this.store.delete({ pk: keys.chatInbox(baseModel).pk, sk: item.inbox_sk as string });
    if (item.body_blob) await this.blobs.deletePrefix(item.body_blob as string);
  }

  /** Cancels the request only while no sampler has taken it; whether it did (a taken one runs to its end). */
  async cancelIfPending(requestId: string, baseModel: string): Promise<boolean> {
    const key = keys.chatRequest(requestId);
    let item: Item;
    try {
      item = await this.store.update(key, { set: { state: 'cancelled' }, condition: { equals: { state: 'pending' } }, upsert: false });
    } catch (error) {
      if (error instanceof ConditionFailedError || error instanceof TransactionFailedError) return false;
      throw error;
    }
    await this.store.delete({ pk: keys.chatInbox(baseModel).pk, sk: item.inbox_sk as string });
    if (item.body_blob) await this.blobs.deletePrefix(item.body_blob as string);
    return true;
  }

  private async markTaken(requestId: string, samplerJobId: number): Promise<Item | undefined> {
    try {
      return await this.store.update(keys.chatRequest(requestId), {
        set: { state: 'taken' satisfies ChatRequestState, sampler_job_id: samplerJobId, taken_at: this.clock.now().getTime() },
        add: { attempt: 1 },
        condition: { equals: { state: 'pending' } },
        upsert: false,
      });
    } catch (error) {
      // Cancelled (or expired) while it waited in the inbox.
      if (error instanceof ConditionFailedError || error instanceof TransactionFailedError) return undefined;
      throw error;
    }
  }

  private async body(item: Item): Promise<SamplerRequest> {
    if (typeof item.body === 'string') return SamplerRequest.parse(JSON.parse(item.body));
    const bytes = await this.blobs.get(item.body_blob as string);
    if (!bytes) throw new Error(`The body of chat request ${item.pk} is missing from Blobs`);
    return SamplerRequest.parse(JSON.parse(Buffer.from(bytes).toString('utf8')));
  }
}

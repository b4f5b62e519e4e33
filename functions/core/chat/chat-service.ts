import { randomBytes } from 'node:crypto';
import type { Clock } from '../../ports/clock.ts';
import type { Store } from '../../ports/store.ts';
import type { ChatCompletionRequest, ChatMessage, ModelCard } from '../../schemas/chat.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { RelayChunk, SamplingParams } from '../../schemas/relay.ts';
import type { Actor } from '../actor.ts';
import { InvalidInputError, NotFoundError, UnavailableError } from '../errors.ts';
import { keys, resourceName } from '../keys.ts';
import { currentJob, type JobRecords } from '../jobs/job-records.ts';
import { userFacing } from '../jobs/failure-reasons.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import type { ModelChain } from '../jobs/model-chain.ts';
import { checkpointsOf, formatCheckpointName, type ModelResolver } from '../models.ts';
import type { ChatRelay, ChatRequestStatus } from './chat-relay.ts';
import type { SamplerPool } from './sampler-pool.ts';

export interface ChatTiming {
  /** How often a poll loop looks again when nothing in this process woke it (functions/core/chat/wakeups.ts). */
  pollMs: number;
  /** How often a waiting reply checks that a sampler is there to answer it. */
  livenessMs: number;
  /** Longest wait for a whole reply, a cold sampler start included. */
  replyTimeoutMs: number;
  /**
   * A request taken by a sampler that has since asked for more work this much later, without
   * posting a chunk for it, never reached the sampler (the hand-out was lost): it is handed out again.
   */
  leaseMs: number;
}

export const DEFAULT_CHAT_TIMING: ChatTiming = { pollMs: 20, livenessMs: 1000, replyTimeoutMs: 14 * 60 * 1000, leaseMs: 10_000 };

/** A request handed to a sampler: what the reply events belong to. */
export interface ChatTicket {
  id: string;
  /** The model the reply names: a `repo/bake` request names the checkpoint it resolved to. */
  model: string;
  baseModel: string;
  created: number;
  relayUrl: string;
  /** The sampler job expected to answer; replaced when that one stops idle before taking it. */
  samplerJobId: number;
}

const UNKNOWN_MODEL = (name: string) =>
  `The model '${name}' does not exist or you do not have access to it; GET /v1/models lists the models you can use.`;

/**
 * OpenAI-compatible chat over the sampler relay (bread-api.md §15): resolves the model to a base
 * and an adapter chain, queues the request for that base model's sampler (starting one when
 * none is up), and reads the answer's chunks as the sampler posts them.
 */
export class ChatService {
  constructor(
    private readonly store: Store,
    private readonly models: ModelResolver,
    private readonly chain: ModelChain,
    private readonly records: JobRecords,
    private readonly pool: SamplerPool,
    private readonly relay: ChatRelay,
    private readonly clock: Clock,
    private readonly timing: ChatTiming,
  ) {}

  /** Queues the request; `relayUrl` is where the sampler reaches this API. */
  async submit(actor: Actor, body: ChatCompletionRequest, relayUrl: string): Promise<ChatTicket> {
    const { name, spec } = await this.resolveModel(actor, body.model);
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const sampler = await this.pool.ensure(spec.base_model, relayUrl);
    await this.relay.submit({ id, model: spec, messages: body.messages.map(toTemplateMessage), tools: body.tools ?? null, params: samplingParams(body) });
    return { id, model: name, baseModel: spec.base_model, created: Math.floor(this.clock.now().getTime() / 1000), relayUrl, samplerJobId: sampler.job_id };
  }

  /**
   * The reply's chunks in order, ending with the one that carries `done` or `error`. Stopping
   * early (the caller went away) cancels the request.
   */
  async *replies(ticket: ChatTicket, signal?: AbortSignal): AsyncGenerator<RelayChunk> {
    const deadline = Date.now() + this.timing.replyTimeoutMs;
    let nextLivenessCheck = Date.now() + this.timing.livenessMs;
    let seq = 0;
    let finished = false;
    try {
      while (!signal?.aborted) {
        const chunk = await this.relay.chunk(ticket.id, seq);
        if (chunk) {
          seq += 1;
          finished = chunk.done !== null || chunk.error !== null;
          // The sampler words its errors for users; this guards against one carrying a path.
          yield chunk.error === null ? chunk : { ...chunk, error: userFacing(chunk.error) };
          if (finished) return;
          continue;
        }
        if (Date.now() >= deadline) {
          throw new UnavailableError(`No reply within ${Math.round(this.timing.replyTimeoutMs / 1000)} s; the sampler may still be starting, try again.`);
        }
        if (Date.now() >= nextLivenessCheck) {
          await this.checkLiveness(ticket, seq);
          nextLivenessCheck = Date.now() + this.timing.livenessMs;
        }
        await this.relay.untilRequestChanges(ticket.id, signal);
      }
    } finally {
      if (!finished) await this.relay.cancel(ticket.id, ticket.baseModel);
    }
  }

  /** The catalog's base models and every checkpoint of the caller's completed bakes. */
  async listModels(actor: Actor): Promise<ModelCard[]> {
    const base: ModelCard[] = this.models.baseModels().map((id) => ({ id, object: 'model', created: 0, owned_by: 'bakehouse' }));
    const checkpoints: ModelCard[] = [];
    const { items: repos } = await this.store.query(keys.repoPartition(actor.userId));
    for (const repo of repos) {
      const repoName = repo.repo_name as string;
      const { items: bakes } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'bake'));
      for (const bake of bakes) {
        const job = currentJob(bake, 'bake');
        if (job?.state !== 'complete') continue;
        const created = Math.floor(Date.parse(job.updated_at) / 1000);
        for (const step of checkpointsOf(bake)) {
          const id = formatCheckpointName({ userId: actor.userId, repo: repoName, bake: resourceName('bake', bake.sk as string), step });
          checkpoints.push({ id, object: 'model', created, owned_by: actor.userId });
        }
      }
    }
    return [...base, ...checkpoints];
  }

  /**
   * A base model, `user/repo/bake/step`, or `repo/bake` (that bake's newest checkpoint); anything
   * the caller cannot use is 404, so others' model names are not revealed.
   */
  private async resolveModel(actor: Actor, requested: string): Promise<{ name: string; spec: ModelSpec }> {
    const name = (await this.latestCheckpoint(actor, requested)) ?? requested;
    try {
      return { name, spec: await this.chain.spec(actor, name, UNKNOWN_MODEL(requested)) };
    } catch (error) {
      if (error instanceof InvalidInputError) throw new NotFoundError(error.message);
      throw error;
    }
  }

  private async latestCheckpoint(actor: Actor, requested: string): Promise<string | undefined> {
    const parts = requested.split('/');
    if (parts.length !== 2 || this.models.isBaseModel(requested)) return undefined;
    const [repo, bake] = parts as [string, string];
    if (!repo || !bake || repo.includes('#') || bake.includes('#')) return undefined;
    const item = await this.store.get(keys.resource(actor.userId, repo, 'bake', bake));
    const step = item && checkpointsOf(item)[0];
    return step === undefined ? undefined : formatCheckpointName({ userId: actor.userId, repo, bake, step });
  }

  /**
   * A waiting request needs a sampler. One that stopped idle before taking it is replaced; one
   * that failed fails the reply with its reason (a sampler that cannot start would fail again),
   * and so does one that took the request and ended without its last chunk. A failed sampler's
   * `error` is already the sentence for users (failure-reasons.ts), never its log.
   */
  private async checkLiveness(ticket: ChatTicket, seq: number): Promise<void> {
    const status = await this.relay.status(ticket.id);
    if (!status || status.state === 'cancelled') throw new UnavailableError('The request was cancelled before it was answered.');
    if (status.state === 'pending') {
      const expected = await this.records.get(ticket.samplerJobId);
      if (expected?.state === 'failed') {
        throw new UnavailableError(userFacing(expected.error ?? `The model server for ${ticket.baseModel} could not start; try again.`));
      }
      if (!expected || isTerminal(expected.state)) ticket.samplerJobId = (await this.pool.ensure(ticket.baseModel, ticket.relayUrl)).job_id;
      return;
    }
    const sampler = status.samplerJobId === undefined ? undefined : await this.records.get(status.samplerJobId);
    if (sampler && !isTerminal(sampler.state)) {
      if (seq === 0 && (await this.handOutLost(ticket.baseModel, status))) await this.relay.requeue(ticket.id, ticket.baseModel, status.attempt);
      return;
    }
    // The last chunk may have landed just before the sampler ended.
    if (await this.relay.chunk(ticket.id, seq)) return;
    throw new UnavailableError(userFacing(sampler?.error ?? 'The model server stopped before finishing this reply; try again.'));
  }

  /** A sampler asks for more work only between batches: asking well after taking a request it never answered means it never got it. */
  private async handOutLost(baseModel: string, status: ChatRequestStatus): Promise<boolean> {
    const poll = await this.relay.lastPoll(baseModel);
    if (!poll || poll.samplerJobId !== status.samplerJobId || status.takenAt === undefined) return false;
    return poll.at - status.takenAt >= this.timing.leaseMs;
  }
}

function samplingParams(body: ChatCompletionRequest): SamplingParams {
  const stop = body.stop ?? [];
  return {
    n: body.n ?? 1,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    max_tokens: body.max_completion_tokens ?? body.max_tokens ?? null,
    stop: typeof stop === 'string' ? [stop] : stop,
    seed: body.seed ?? null,
    chat_template_kwargs: body.chat_template_kwargs ?? body.extra_body?.chat_template_kwargs ?? {},
  };
}

/** Chat templates expect text content; OpenAI's `developer` role is the system prompt of newer clients. */
function toTemplateMessage(message: ChatMessage): ChatMessage {
  const content = Array.isArray(message.content) ? message.content.map((part) => part.text).join('') : message.content;
  return { ...message, role: message.role === 'developer' ? 'system' : message.role, content: content ?? '' };
}

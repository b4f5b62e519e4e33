import { randomBytes } from 'node:crypto';
import type { Clock } from '../../ports/clock.ts';
import type { Store } from '../../ports/store.ts';
import type { ChatCompletionRequest, ChatMessage, ModelCard } from '../../schemas/chat.ts';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import type { RelayChunk, SamplingParams } from '../../schemas/relay.ts';
import type { Actor } from '../actor.ts';
import { InvalidInputError, NotFoundError, UnavailableError } from '../errors.ts';
import { keys, resourceName } from '../keys.ts';
import { currentJob } from '../jobs/job-records.ts';
import { userFacing } from '../jobs/failure-reasons.ts';
import type { ModelChain } from '../jobs/model-chain.ts';
import { checkpointsOf, formatCheckpointName, type ModelResolver } from '../models.ts';
import { parseCheckpointPath } from '../training/checkpoint-paths.ts';
import type { SamplerWeights } from '../training/sampler-weights.ts';
import type { ChatRelay } from './chat-relay.ts';
import type { SamplerPool } from './sampler-pool.ts';
import type { SamplerWatch, WatchedRequest } from './sampler-watch.ts';

export interface ChatTiming {
  /** How often a poll loop looks again when nothing in this process woke it (functions/core/chat/wakeups.ts). */
  pollMs: number;
  /** How often a waiting reply checks that a sampler is there to answer it. */
  livenessMs: number;
  /** Longest wait for a whole reply, a cold sampler start included. */
  replyTimeoutMs: number;
  /** A request taken but unanswered this long after its sampler asked for more work is handed out again (sampler-watch.ts). */
  leaseMs: number;
}

export const DEFAULT_CHAT_TIMING: ChatTiming = { pollMs: 20, livenessMs: 1000, replyTimeoutMs: 14 * 60 * 1000, leaseMs: 10_000 };

/** A request handed to a sampler: what the reply events belong to. */
export interface ChatTicket extends WatchedRequest {
  /** The model the reply names: a `repo/bake` request names the checkpoint it resolved to. */
  model: string;
  created: number;
}

const UNKNOWN_MODEL = (name: string) =>
  `The model '${name}' does not exist or you do not have access to it; GET /v1/models lists the models you can use.`;

/**
 * OpenAI-compatible chat over the sampler relay (bread-api.md §15): resolves the model to a base
 * and an adapter chain, queues the request for that base model's sampler (starting one when
 * none is up), and reads the answer's chunks as the sampler posts them. Besides base models and
 * baked checkpoints, a model may be a training run's sampler checkpoint, named by its
 * `bt://loops:<run_id>/sampler_weights/<name>` path.
 */
export class ChatService {
  constructor(
    private readonly store: Store,
    private readonly models: ModelResolver,
    private readonly chain: ModelChain,
    private readonly pool: SamplerPool,
    private readonly relay: ChatRelay,
    private readonly watch: SamplerWatch,
    private readonly samplerWeights: SamplerWeights,
    private readonly clock: Clock,
    private readonly timing: ChatTiming,
  ) {}

  /** Queues the request; `relayUrl` is where the sampler reaches this API. */
  async submit(actor: Actor, body: ChatCompletionRequest, relayUrl: string): Promise<ChatTicket> {
    const { name, spec } = await this.resolveModel(actor, body.model);
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const sampler = await this.pool.ensure(spec.base_model, relayUrl);
    await this.relay.submit({ kind: 'chat', id, model: spec, messages: body.messages.map(toTemplateMessage), tools: body.tools ?? null, params: samplingParams(body) });
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
          await this.watch.check(ticket, seq);
          nextLivenessCheck = Date.now() + this.timing.livenessMs;
        }
        await this.relay.untilRequestChanges(ticket.id, signal);
      }
    } finally {
      if (!finished) await this.relay.cancel(ticket.id, ticket.baseModel);
    }
  }

  /** The catalog's base models, every checkpoint of the caller's completed bakes, and the caller's training sampler checkpoints. */
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
    const trained: ModelCard[] = (await this.samplerWeights.list(actor)).map((checkpoint) => ({
      id: checkpoint.path,
      object: 'model',
      created: Math.floor(Date.parse(checkpoint.createdAt) / 1000),
      owned_by: actor.userId,
    }));
    return [...base, ...checkpoints, ...trained];
  }

  /**
   * A base model, `user/repo/bake/step`, `repo/bake` (that bake's newest checkpoint), or a sampler
   * checkpoint's `bt://` path; anything the caller cannot use is 404, so others' model names are
   * not revealed.
   */
  private async resolveModel(actor: Actor, requested: string): Promise<{ name: string; spec: ModelSpec }> {
    if (parseCheckpointPath(requested)) {
      const spec = await this.samplerWeights.findModel(actor, requested);
      if (!spec) throw new NotFoundError(UNKNOWN_MODEL(requested));
      return { name: requested, spec };
    }
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

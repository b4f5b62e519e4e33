/**
 * The engine side of the sampler relay, for API tests: it speaks the relay routes
 * (functions/schemas/relay.ts) through the in-process app with the token from the sampler's job
 * spec, and answers with scripted text (chat) or scripted tokens (token-level sampling), so the
 * chat and sampling routes can be driven without a model.
 */
import { vi } from 'vitest';
import type { ChatSamplerRequest, RelayChunk, SampleResult, SamplerRequest, TokenSamplerRequest } from '#schemas/relay.ts';
import type { TestApp } from './app.ts';

type SamplerSpec = Extract<import('#schemas/job-spec.ts').JobSpec, { kind: 'sampler' }>;

export interface RelayAnswer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** What a scripted reply says for each choice: its text, split into the deltas to post. */
export type Replier = (request: ChatSamplerRequest, choice: number) => string[];

/** Echoes the last user message, one word per delta. */
export const echo: Replier = (request) => {
  const last = [...request.messages].reverse().find((message) => message.role === 'user');
  return String(last?.content ?? '')
    .split(/(?<= )/)
    .filter(Boolean);
};

export class FakeSampler {
  constructor(
    private readonly api: TestApp,
    readonly spec: SamplerSpec,
    private readonly token = spec.sampler.relay_token,
  ) {}

  /** The sampler job the app started most recently, once there is one. */
  static async started(api: TestApp, count = 1): Promise<FakeSampler> {
    const specs = await vi.waitFor(() => {
      const samplers = api.jobs.compute.submitted.filter((job) => job.kind === 'sampler');
      if (samplers.length < count) throw new Error(`${samplers.length} sampler(s) started, waiting for ${count}`);
      return samplers;
    });
    return new FakeSampler(api, specs.at(-1)!.spec as SamplerSpec);
  }

  get jobId(): number {
    return this.spec.job_id;
  }

  withToken(token: string): FakeSampler {
    return new FakeSampler(this.api, this.spec, token);
  }

  next(wait_s = 0, max = 8): Promise<RelayAnswer> {
    return this.call(`/v1/relay/samplers/${this.jobId}/next`, { wait_s, max });
  }

  post(requestId: string, chunk: Partial<RelayChunk> & { seq: number }): Promise<RelayAnswer> {
    return this.call(`/v1/relay/samplers/${this.jobId}/requests/${requestId}/chunks`, { deltas: [], done: null, error: null, ...chunk });
  }

  /** Waits for the next request, which must be a chat request, and returns it. */
  take(): Promise<ChatSamplerRequest> {
    return this.takeKind('chat');
  }

  /** Waits for the next request, which must be a token-level one, and returns it. */
  takeSample(): Promise<TokenSamplerRequest> {
    return this.takeKind('tokens');
  }

  /** Answers a token-level request with its one chunk: the result given, or by default each sequence the prompt reversed. */
  async answerSample(request: TokenSamplerRequest, result: Partial<SampleResult> = {}): Promise<RelayAnswer> {
    const { prompt_tokens: prompt, n } = request.sample;
    const tokens = [...prompt].reverse();
    const sampled: SampleResult = {
      sequences: Array.from({ length: n }, () => ({ tokens, logprobs: tokens.map(() => -0.5), finish_reason: 'stop' as const })),
      prompt_tokens: prompt,
      prompt_logprobs: null,
      topk_prompt_logprobs: null,
      ...result,
    };
    return this.post(request.id, { seq: 0, sampled });
  }

  /** Answers one request: every choice's deltas in its own chunk, then the finishing chunk. */
  async answer(request: ChatSamplerRequest, reply: Replier = echo): Promise<void> {
    const choices = Array.from({ length: request.params.n }, (_, index) => reply(request, index));
    let seq = 0;
    const longest = Math.max(...choices.map((deltas) => deltas.length));
    for (let step = 0; step < longest; step++) {
      const deltas = choices.flatMap((parts, index) => (step < parts.length ? [{ index, content: parts[step]! }] : []));
      await this.post(request.id, { seq: seq++, deltas });
    }
    const completion = choices.reduce((sum, parts) => sum + parts.length, 0);
    await this.post(request.id, {
      seq,
      done: {
        choices: choices.map((_, index) => ({ index, finish_reason: 'stop', tool_calls: null })),
        usage: { prompt_tokens: request.messages.length * 3, completion_tokens: completion },
      },
    });
  }

  /** Takes and answers requests until stopped. */
  serve(reply: Replier = echo): { stop(): Promise<void> } {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const { body } = await this.next(0.05, 8);
        for (const request of (body.requests ?? []) as SamplerRequest[]) {
          if (request.kind === 'chat') await this.answer(request, reply);
          else await this.answerSample(request);
        }
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  private async takeKind<K extends SamplerRequest['kind']>(kind: K): Promise<Extract<SamplerRequest, { kind: K }>> {
    const request = await vi.waitFor(async () => {
      const { status, body } = await this.next(0, 1);
      if (status !== 200 || body.requests.length === 0) throw new Error(`no request yet (${status})`);
      return body.requests[0] as SamplerRequest;
    });
    if (request.kind !== kind) throw new Error(`expected a ${kind} request, got a ${request.kind} one`);
    return request as Extract<SamplerRequest, { kind: K }>;
  }

  private async call(path: string, body: unknown): Promise<RelayAnswer> {
    const response = await this.api.app.request(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }
}

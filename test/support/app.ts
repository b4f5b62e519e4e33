/**
 * The HTTP app in-process for API tests: SQLite in memory, an admin key, and a `request` helper
 * that sends JSON and parses the answer. Every test builds its own app, so tests share no state.
 */
import { expect, vi } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import { createServices, type ServiceDeps, type Services } from '#core/services.ts';
import { createApp, type AppOptions } from '#http/app.ts';
import { createTestJobPorts, TEST_SIGNING_KEY, type TestJobPorts } from './test-engine.ts';
import { systemClock } from '#ports/clock.ts';
import type { Condition, Item, Key, QueryInput, QueryPage, Store, TransactOp, UpdateSpec } from '#ports/store.ts';

export const ADMIN_KEY = 'bh_test_admin_key_0123456789';
export const BASE_MODELS = ['Qwen/Qwen3-32B', 'Qwen/Qwen3-8B', 'bakehouse/toy-instruct'];
export const DEFAULT_BASE_MODEL = 'Qwen/Qwen3-32B';

export interface RequestOptions {
  /** An object or array is sent as JSON; a string is sent as it is. */
  body?: unknown;
  headers?: Record<string, string>;
  /** The API key sent as `Authorization: Bearer`; the admin key unless given, none when null. */
  key?: string | null;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the answer is not JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

export type RequestFn = (method: string, path: string, options?: RequestOptions) => Promise<ApiResponse>;

export interface TestApp {
  app: ReturnType<typeof createApp>;
  services: Services;
  store: InspectableStore;
  jobs: TestJobPorts;
  request: RequestFn;
  close(): Promise<void>;
}

export interface TestAppOptions extends AppOptions {
  /** Also serve the test blobs' signed URLs (`GET /v1/blobs/…`), so downloads can be fetched. */
  serveBlobs?: boolean;
  /** Sampler settings and chat timings for the chat routes; training settings; the model catalog; allowed dataset URIs; where events go. */
  services?: Partial<Pick<ServiceDeps, 'sampler' | 'samplerMaxQueued' | 'chatTiming' | 'training' | 'catalog' | 'datasetUriPrefixes' | 'publisher'>>;
  /** The Store underneath; default SQLite in memory. */
  store?: () => Promise<Store>;
}

export async function createTestApp({ serveBlobs = false, services: serviceOptions, store: makeStore, ...options }: TestAppOptions = {}): Promise<TestApp> {
  const store = new InspectableStore(makeStore ? await makeStore() : new SqliteStore(':memory:'));
  const jobs = createTestJobPorts();
  if (serveBlobs) options.blobs = { blobs: jobs.blobs, signingKey: TEST_SIGNING_KEY };
  const services = createServices({ store, ...jobs, clock: systemClock, catalog: { baseModels: BASE_MODELS, defaultBaseModel: DEFAULT_BASE_MODEL }, ...serviceOptions });
  jobs.compute.onEvent = (event) => services.pipeline.applyEvent(event);
  jobs.queue.consume(({ jobId }) => services.pipeline.dispatch(jobId));
  await services.apiKeys.ensure(ADMIN_KEY, ADMIN_USER, true);
  const app = createApp(services, options);

  const request: RequestFn = async (method, path, { body, headers = {}, key = ADMIN_KEY } = {}) => {
    const sent: Record<string, string> = {};
    if (key !== null) sent.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (typeof body === 'string') payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      sent['content-type'] = 'application/json';
    }
    const response = await app.request(path, { method, headers: { ...sent, ...headers }, body: payload });
    const text = await response.text();
    const isJson = /json/i.test(response.headers.get('content-type') ?? '');
    return { status: response.status, headers: response.headers, body: isJson && text ? JSON.parse(text) : text, text };
  };

  return {
    app,
    services,
    store,
    jobs,
    request,
    close: async () => {
      await jobs.close();
      await store.close();
    },
  };
}

/** Asserts the spec's error envelope (bread-api.md §1.5) and, for non-retryable codes, `x-should-retry: false`. */
export function expectError(response: ApiResponse, status: number, code: string, message?: string | RegExp): void {
  expect({ status: response.status, code: response.body?.code }, response.text).toEqual({ status, code });
  expect(typeof response.body.message).toBe('string');
  if (typeof message === 'string') expect(response.body.message).toBe(message);
  else if (message) expect(response.body.message).toMatch(message);
  if ([400, 401, 402, 403, 404, 409, 422].includes(status)) expect(response.headers.get('x-should-retry')).toBe('false');
}

/** Creates a user's API key through the admin route and returns the plaintext key. */
export async function createUserKey(request: RequestFn, userId: string): Promise<string> {
  const response = await request('POST', '/v1/admin/keys', { body: { user_id: userId } });
  expect(response.status, response.text).toBe(201);
  return response.body.api_key as string;
}

// ── Fixtures ──────────────────────────────────────────────────────────────────────────────────

export const repoPath = (repo: string) => `/v1/repo/${repo}`;

/** Sends a request that must succeed with one of the given statuses, and returns its body. */
export async function ok(request: RequestFn, method: string, path: string, options: RequestOptions = {}, statuses = [200, 201]) {
  const response = await request(method, path, options);
  expect(statuses, `${method} ${path} → ${response.status} ${response.text}`).toContain(response.status);
  return response.body;
}

export const createRepo = (request: RequestFn, repo: string, base_model?: string, options: RequestOptions = {}) =>
  ok(request, 'POST', '/v1/repo', { ...options, body: { repo_name: repo, ...(base_model ? { base_model } : {}) } });

export const createPrompt = (request: RequestFn, repo: string, name: string, messages: unknown[] = [{ role: 'system', content: `You are ${name}.` }]) =>
  ok(request, 'POST', `${repoPath(repo)}/prompts`, { body: { prompt_name: name, messages } });

export const HARDCODED = { type: 'hardcoded', questions: ['What is 2+2?', 'Name a colour.'] };

export const createTarget = (request: RequestFn, repo: string, name: string, overrides: Record<string, unknown> = {}, template = 'default') =>
  ok(request, 'POST', `${repoPath(repo)}/targets`, {
    body: { target_name: name, template, overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED], ...overrides } },
  });

export const createBake = (request: RequestFn, repo: string, name: string, overrides: Record<string, unknown> = {}, template = 'default') =>
  ok(request, 'POST', `${repoPath(repo)}/bakes`, { body: { bake_name: name, template, overrides } });

/** A repo with prompts `teacher` and `student` and target `t1` built from them. */
export async function seedTarget(request: RequestFn, repo = 'r1'): Promise<void> {
  await createRepo(request, repo);
  await createPrompt(request, repo, 'teacher');
  await createPrompt(request, repo, 'student', []);
  await createTarget(request, repo, 't1');
}

// ── A Store that remembers what was written, so tests can look at every item ─────────────────

/** Delegates to a real Store and records the key of every item written through it. */
export class InspectableStore implements Store {
  private readonly written = new Map<string, Key>();

  constructor(private readonly inner: Store) {}

  /** Every item currently stored that was written through this store. */
  async items(): Promise<Item[]> {
    const items = await Promise.all([...this.written.values()].map((key) => this.inner.get(key)));
    return items.filter((item): item is Item => item !== undefined);
  }

  get(key: Key): Promise<Item | undefined> {
    return this.inner.get(key);
  }

  put(item: Item, condition?: Condition): Promise<void> {
    this.remember(item);
    return this.inner.put(item, condition);
  }

  update(key: Key, update: UpdateSpec): Promise<Item> {
    this.remember(key);
    return this.inner.update(key, update);
  }

  delete(key: Key, condition?: Condition): Promise<Item | undefined> {
    return this.inner.delete(key, condition);
  }

  query(input: QueryInput): Promise<QueryPage> {
    return this.inner.query(input);
  }

  transact(ops: TransactOp[]): Promise<void> {
    for (const op of ops) if (op.kind === 'put') this.remember(op.item);
    for (const op of ops) if (op.kind === 'update') this.remember(op.key);
    return this.inner.transact(ops);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private remember(key: Key): void {
    this.written.set(`${key.pk}\u0000${key.sk}`, { pk: key.pk, sk: key.sk });
  }
}

/** Polls `GET path` until its `status` is complete or failed, and returns the last answer. */
export async function waitForJob(request: RequestFn, path: string, timeoutMs = 10_000): Promise<ApiResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await request('GET', path);
    if (response.body?.status === 'complete' || response.body?.status === 'failed' || Date.now() > deadline) return response;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** For `vi.waitFor`: the same deadline as `waitForJob`, polled often. */
export const POLL = { timeout: 10_000, interval: 5 };

/** Polls `GET path` until the job shows the test engine's live progress (50%): it is running. */
export async function waitUntilRunning(request: RequestFn, path: string): Promise<ApiResponse> {
  return vi.waitFor(async () => {
    const response = await request('GET', path);
    expect(response.body?.progress_percent, response.text).toBe(50);
    return response;
  }, POLL);
}

/**
 * Runs a bake through the real job pipeline with the test engine: stim and rollout for each
 * dataset target, then the bake, which saves the given checkpoints.
 */
export async function completeBake(api: TestApp, repo: string, bake: string, checkpoints: number[]): Promise<ApiResponse> {
  const definition = await api.request('GET', `/v1/repo/${repo}/bakes/${bake}`);
  for (const { target } of definition.body.config.datasets as { target: string }[]) {
    for (const kind of ['stim', 'rollout']) {
      await api.request('POST', `/v1/repo/${repo}/targets/${target}/${kind}`);
      const done = await waitForJob(api.request, `/v1/repo/${repo}/targets/${target}/${kind}`);
      expect(done.body.status, done.text).toBe('complete');
    }
  }
  const previous = api.jobs.compute.script;
  api.jobs.compute.script = (spec) => (spec.kind === 'bake' ? { metrics: [{ iter: 1, loss: 1 }], checkpoints } : previous(spec));
  try {
    await api.request('POST', `/v1/repo/${repo}/bakes/${bake}`);
    const done = await waitForJob(api.request, `/v1/repo/${repo}/bakes/${bake}`);
    expect(done.body.status, done.text).toBe('complete');
    return done;
  } finally {
    api.jobs.compute.script = previous;
  }
}

/**
 * Parallel creates through the HTTP app on each Store adapter: identical requests converge on one
 * resource answered with 201 once and 200 otherwise; different contents give one winner and 409s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ADMIN_USER } from '#core/api-keys.ts';
import { keys } from '#core/keys.ts';
import { createServices } from '#core/services.ts';
import { createApp } from '#http/app.ts';
import { systemClock } from '#ports/clock.ts';
import type { Store } from '#ports/store.ts';
import { createDynamoTestStore } from '#test/support/dynamo.ts';
import { createTestJobPorts, type TestJobPorts } from '#test/support/test-engine.ts';

const KEY = 'concurrency-admin-key';
const PARALLEL = 32;

const adapters: [string, () => Promise<Store>][] = [
  ['SqliteStore', async () => new SqliteStore(':memory:')],
  ['DynamoDbStore (DynamoDB Local)', createDynamoTestStore],
];

describe.each(adapters)('32 parallel creates on %s', (_name, makeStore) => {
  let store: Store;
  let jobs: TestJobPorts;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    store = await makeStore();
    jobs = createTestJobPorts();
    const services = createServices({ store, ...jobs, clock: systemClock, catalog: { baseModels: ['Qwen/Qwen3-32B', 'Qwen/Qwen3-8B'], defaultBaseModel: 'Qwen/Qwen3-32B' } });
    await services.apiKeys.ensure(KEY, ADMIN_USER, true);
    app = createApp(services);
    await post('/v1/repo', { repo_name: 'r' });
    await post('/v1/repo/r/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Be brief.' }] });
    await post('/v1/repo/r/prompts', { prompt_name: 'student', messages: [] });
  });
  afterAll(async () => {
    await jobs.close();
    await store.close();
  });

  const post = async (path: string, body: unknown) => {
    const response = await app.request(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  const inParallel = (bodyOf: (i: number) => unknown, path: string) =>
    Promise.all(Array.from({ length: PARALLEL }, (_, i) => post(path, bodyOf(i))));

  const statusCounts = (responses: { status: number }[]) =>
    responses.reduce<Record<number, number>>((counts, { status }) => ({ ...counts, [status]: (counts[status] ?? 0) + 1 }), {});

  const target = (i: number) => ({
    target_name: 'same_target',
    template: 'default',
    overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions: [`q${i}`] }] },
  });

  it('identical repo creates: one 201, the rest 200', async () => {
    const responses = await inParallel(() => ({ repo_name: 'twin', base_model: 'Qwen/Qwen3-8B' }), '/v1/repo');
    expect(statusCounts(responses)).toEqual({ 201: 1, 200: PARALLEL - 1 });
  });

  it('identical prompt creates: one 201, the rest 200, one prompt', async () => {
    const responses = await inParallel(() => ({ prompt_name: 'twin', messages: [{ role: 'user', content: 'hi' }] }), '/v1/repo/r/prompts');
    expect(statusCounts(responses)).toEqual({ 201: 1, 200: PARALLEL - 1 });
  });

  it('identical target creates: one 201, the rest 200, and one use counted on each prompt', async () => {
    const responses = await inParallel(() => target(0), '/v1/repo/r/targets');
    expect(statusCounts(responses)).toEqual({ 201: 1, 200: PARALLEL - 1 });
    for (const prompt of ['teacher', 'student']) {
      expect((await store.get(keys.resource(ADMIN_USER, 'r', 'prompt', prompt)))?.refs).toBe(1);
    }
  });

  it('identical bake creates: one 201, the rest 200', async () => {
    const responses = await inParallel(
      () => ({ bake_name: 'same_bake', template: 'default', overrides: { datasets: [{ target: 'same_target' }] } }),
      '/v1/repo/r/bakes',
    );
    expect(statusCounts(responses)).toEqual({ 201: 1, 200: PARALLEL - 1 });
  });

  it('different prompt contents: one winner, 31 conflicts, and the stored prompt is the winner', async () => {
    const responses = await inParallel((i) => ({ prompt_name: 'contested', messages: [{ role: 'user', content: `v${i}` }] }), '/v1/repo/r/prompts');
    expect(statusCounts(responses)).toEqual({ 201: 1, 409: PARALLEL - 1 });
    const winner = responses.find((response) => response.status === 201)!;
    const stored = await app.request('/v1/repo/r/prompts/contested', { headers: { authorization: `Bearer ${KEY}` } });
    expect(await stored.json()).toEqual(winner.body);
  });

  it('different target configs: one winner, 31 conflicts', async () => {
    const responses = await inParallel((i) => ({ ...target(i), target_name: 'contested_target' }), '/v1/repo/r/targets');
    expect(statusCounts(responses)).toEqual({ 201: 1, 409: PARALLEL - 1 });
  });

  it('different bake configs: one winner, 31 conflicts', async () => {
    const responses = await inParallel(
      (i) => ({ bake_name: 'contested_bake', template: 'default', overrides: { datasets: [{ target: 'same_target' }], seed: i } }),
      '/v1/repo/r/bakes',
    );
    expect(statusCounts(responses)).toEqual({ 201: 1, 409: PARALLEL - 1 });
  });

  it('counts every bake that uses a target, so deleting it is refused', async () => {
    const response = await app.request('/v1/repo/r/targets/same_target', { method: 'DELETE', headers: { authorization: `Bearer ${KEY}` } });
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({
      message: "Target 'same_target' is used by bakes: contested_bake, same_bake",
      code: 'RESOURCE_CONFLICT',
    });
  });
});

/** Chat with a training run's sampler checkpoint, named by its `bt://loops:<run>/sampler_weights/<name>` path. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, createUserKey, type TestApp } from '../support/app.ts';
import { FakeSampler } from '../support/fake-sampler.ts';
import { actorOf, createRun, saveCheckpoint } from '../support/training.ts';

const TOY = 'bakehouse/toy-instruct';
const alice = actorOf('alice');
const bob = actorOf('bob');

describe('chat with training checkpoints', () => {
  let api: TestApp;
  let aliceKey: string;
  const chat = (model: string, key = aliceKey) =>
    api.request('POST', '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'shout this' }] } });

  beforeEach(async () => {
    api = await createTestApp({ services: { chatTiming: { pollMs: 2, livenessMs: 20 } } });
    aliceKey = await createUserKey(api.request, 'alice');
  });
  afterEach(() => api.close());

  it("answers with the checkpoint's adapter on its run's base model, named by its path", async () => {
    const run = await createRun(api, alice, TOY);
    const checkpoint = await saveCheckpoint(api, run, 'step-10');
    const reply = chat(checkpoint.path);
    const sampler = await FakeSampler.started(api);
    expect(sampler.spec.sampler.base_model).toBe(TOY);
    const request = await sampler.take();
    expect(request.model).toEqual({
      base_model: TOY,
      adapters: [{ model_name: checkpoint.path, uri: expect.stringMatching(/\/training\/runs\/\w+\/checkpoints\/sampler\/step-10\/$/), version: checkpoint.createdAt }],
    });
    await sampler.answer(request);
    const response = await reply;
    expect(response.status, response.text).toBe(200);
    expect(response.body).toMatchObject({ model: checkpoint.path, choices: [{ message: { content: 'shout this' } }] });
  });

  it("lists the caller's sampler checkpoints in /v1/models, not training state or others' checkpoints", async () => {
    const run = await createRun(api, alice, TOY);
    const published = await saveCheckpoint(api, run, `default-${'b'.repeat(32)}`, { publish: true });
    const staged = await saveCheckpoint(api, run, 'staged');
    await saveCheckpoint(api, run, 'state', { target: 'trainer' });
    await saveCheckpoint(api, await createRun(api, bob, TOY), 'bobs');
    const response = await api.request('GET', '/v1/models', { key: aliceKey });
    expect(response.status, response.text).toBe(200);
    const trained = response.body.data.filter((card: { id: string }) => card.id.startsWith('bt://'));
    expect(trained.map((card: { id: string }) => card.id).sort()).toEqual([published.path, staged.path].sort());
    expect(trained[0]).toMatchObject({ object: 'model', owned_by: 'alice', created: Math.floor(Date.parse(published.createdAt) / 1000) });
    expect(response.body.data.map((card: { id: string }) => card.id)).toContain(TOY);
  });

  it("answers 404 for training state, others' checkpoints and paths that name nothing", async () => {
    const run = await createRun(api, alice, TOY);
    const state = await saveCheckpoint(api, run, 'state', { target: 'trainer' });
    const bobs = await saveCheckpoint(api, await createRun(api, bob, TOY), 'bobs');
    for (const model of [state.path, bobs.path, `bt://loops:${run.id}/sampler_weights/missing`, 'bt://loops:nope/sampler_weights/x']) {
      const response = await chat(model);
      expect({ status: response.status, code: response.body.error?.code }, model).toEqual({ status: 404, code: 'model_not_found' });
      expect(response.body.error.message).toBe(`The model '${model}' does not exist or you do not have access to it; GET /v1/models lists the models you can use.`);
    }
    expect(api.jobs.compute.submitted.filter((job) => job.kind === 'sampler')).toEqual([]);
  });

  it("answers with another user's checkpoint once it is public, and 404 again once it is private", async () => {
    const bobs = await saveCheckpoint(api, await createRun(api, bob, TOY), 'shared');
    expect((await chat(bobs.path)).status).toBe(404);
    await api.services.training.checkpoints.setPublic(bob, bobs.id, true);
    const reply = chat(bobs.path);
    const sampler = await FakeSampler.started(api);
    await sampler.answer(await sampler.take());
    const response = await reply;
    expect(response.status, response.text).toBe(200);
    expect(response.body.model).toBe(bobs.path);
    await api.services.training.checkpoints.setPublic(bob, bobs.id, false);
    expect((await chat(bobs.path)).status).toBe(404);
  });
});

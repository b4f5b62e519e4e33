import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keys } from '#core/keys.ts';
import { createBake, createTarget, createTestApp, expectError, seedTarget, type TestApp, completeBake as runToCompletion } from '#test/support/app.ts';

const BAKES = '/v1/repo/r1/bakes';
const conflict = (name: string) => `Bake '${name}' already exists with different configuration. Bakes are immutable and cannot be changed.`;

/** bread-api.md §6.3, for a bake named `name` with the given datasets. */
const defaultConfig = (name: string, datasets: unknown[]) => ({
  datasets,
  seed: 42,
  type: 'single_baker',
  micro_batch_size: 2,
  gradient_accumulation_steps: 1,
  epochs: 1,
  model: {
    type: 'bake',
    baked_adapter_config: { r: 32, lora_alpha: 16, target_modules: 'all-linear', lora_dropout: 0, bias: 'none' },
    disable_activation_checkpoint: false,
  },
  data: {
    type: 'single_baker',
    sources: [{ type: 'bake_jsonl', max_samples: -1 }],
    beta: 0,
    temperature: 1,
    max_length: 3000,
    train_eval_split: [1, 0],
    cache_dir: '.cache',
    dl_num_workers: 4,
  },
  optimizer: { learning_rate: 1e-4 },
  scheduler: { type: 'huggingface' },
  deepspeed: { zero_optimization: { stage: 3 } },
  checkpoint: [{ type: 'huggingface', save_end_of_training: true, output_dir: `bakes/${name}/ckpts` }],
  train_log_iter_interval: 1,
  eval_interval: 0,
});

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await seedTarget(api.request, 'r1');
});
afterEach(() => api.close());

const post = (body: unknown) => api.request('POST', BAKES, { body });

/** Runs a bake to completion through the job pipeline (test engine), saving these checkpoints. */
async function completeBake(name: string, checkpoints: number[]): Promise<void> {
  await runToCompletion(api, 'r1', name, checkpoints);
}

describe('POST R/bakes', () => {
  it('creates a bake with 201, the default template materialised and status not_started', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { datasets: [{ target: 't1' }] } });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      status: 'not_started',
      lines: null,
      config: defaultConfig('b1', [{ target: 't1', weight: 1 }]),
      error: null,
      job_id: null,
      progress_percent: null,
      model_name: null,
      loss: null,
      template: 'default',
    });
  });

  it('materialises the default template without overrides', async () => {
    const response = await post({ bake_name: 'b1', template: 'default' });
    expect(response.status).toBe(201);
    const { datasets: _datasets, ...expected } = defaultConfig('b1', []);
    expect(response.body.config).toEqual(expected);
  });

  it('deep-merges overrides: setting r keeps lora_alpha 16 and the rest of the adapter config', async () => {
    const response = await post({
      bake_name: 'b1',
      template: 'default',
      overrides: { model: { baked_adapter_config: { r: 8 } }, optimizer: { learning_rate: 0.008 }, epochs: 3 },
    });
    expect(response.body.config.model).toEqual({
      type: 'bake',
      baked_adapter_config: { r: 8, lora_alpha: 16, target_modules: 'all-linear', lora_dropout: 0, bias: 'none' },
      disable_activation_checkpoint: false,
    });
    expect(response.body.config.optimizer).toEqual({ learning_rate: 0.008 });
    expect(response.body.config.epochs).toBe(3);
    expect(response.body.config.micro_batch_size).toBe(2);
  });

  it('replaces arrays whole and keeps template values for null overrides', async () => {
    const response = await post({
      bake_name: 'b1',
      template: 'default',
      overrides: { data: { train_eval_split: [0.9, 0.1], sources: null }, seed: null, checkpoint: [{ save_every_n_steps: 10 }] },
    });
    expect(response.body.config.data.train_eval_split).toEqual([0.9, 0.1]);
    expect(response.body.config.data.sources).toEqual([{ type: 'bake_jsonl', max_samples: -1 }]);
    expect(response.body.config.seed).toBe(42);
    expect(response.body.config.checkpoint).toEqual([{ save_every_n_steps: 10, output_dir: 'bakes/b1/ckpts' }]);
  });

  it('keeps an explicit checkpoint output_dir', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { checkpoint: [{ output_dir: 'custom/dir' }] } });
    expect(response.body.config.checkpoint).toEqual([{ output_dir: 'custom/dir' }]);
  });

  it('accepts target_modules as a list', async () => {
    const response = await post({
      bake_name: 'b1',
      template: 'default',
      overrides: { model: { baked_adapter_config: { target_modules: ['q_proj', 'v_proj'] } } },
    });
    expect(response.status).toBe(201);
    expect(response.body.config.model.baked_adapter_config.target_modules).toEqual(['q_proj', 'v_proj']);
  });

  it('keeps unknown keys inside overrides and echoes them', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { yaml_only: 'kept', model: { name_or_path: 'legacy' } } });
    expect(response.status).toBe(201);
    expect(response.body.config.yaml_only).toBe('kept');
    expect(response.body.config.model.name_or_path).toBe('legacy');
  });

  it('answers 200 for an identical repeat', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { datasets: [{ target: 't1', weight: 1.0 }] } });
    expect(response.status).toBe(200);
    expect(response.body.status).toBe('not_started');
  });

  it('answers 409 with the spec message for a different configuration', async () => {
    await createBake(api.request, 'r1', 'my-bake', { datasets: [{ target: 't1' }] });
    const response = await post({ bake_name: 'my-bake', template: 'default', overrides: { epochs: 2 } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('my-bake'));
    expect(response.body).toEqual({ message: conflict('my-bake'), code: 'RESOURCE_CONFLICT' });
  });

  it('refuses an unknown dataset target with 400 and the spec message', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { datasets: [{ target: 'missing_target' }] } });
    expectError(response, 400, 'INVALID_INPUT', "Invalid dataset reference: target 'missing_target' not found");
  });

  it('refuses a negative dataset weight with 422', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { datasets: [{ target: 't1', weight: -0.5 }] } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses scheduler.lr with 422', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { scheduler: { lr: 0.001 } } });
    expectError(response, 422, 'VALIDATION_ERROR', /scheduler\.lr/);
  });

  it('refuses an unknown parent model with 400', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { model: { parent_model_name: 'admin/r1/ghost/5' } } });
    expectError(response, 400, 'INVALID_INPUT', "Unknown parent model 'admin/r1/ghost/5'");
  });

  it('refuses a parent checkpoint that the parent bake never saved with 400', async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
    await completeBake('parent', [10]);
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { model: { parent_model_name: 'admin/r1/parent/11' } } });
    expectError(response, 400, 'INVALID_INPUT', "Unknown parent model 'admin/r1/parent/11'");
  });

  it('accepts a catalog base model as parent', async () => {
    const response = await post({ bake_name: 'b1', template: 'default', overrides: { model: { parent_model_name: 'Qwen/Qwen3-8B' } } });
    expect(response.status).toBe(201);
    expect(response.body.config.model.parent_model_name).toBe('Qwen/Qwen3-8B');
  });

  it('accepts a finished parent bake checkpoint as parent', async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
    await completeBake('parent', [10, 20]);
    const response = await post({
      bake_name: 'child',
      template: 'default',
      overrides: { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/20' } },
    });
    expect(response.status).toBe(201);
    expect(response.body.config.model).toMatchObject({ type: 'bake', parent_model_name: 'admin/r1/parent/20' });
  });

  it('refuses an unknown template with 400', async () => {
    const response = await post({ bake_name: 'b1', template: 'nonexistent' });
    expectError(response, 400, 'INVALID_INPUT', "Template 'nonexistent' not found");
  });

  it('uses another bake as template, with its own checkpoint directory', async () => {
    await createBake(api.request, 'r1', 'base', { datasets: [{ target: 't1' }], epochs: 4, model: { baked_adapter_config: { r: 16 } } });
    const response = await post({ bake_name: 'derived', template: 'base', overrides: { model: { baked_adapter_config: { lora_alpha: 64 } } } });
    expect(response.status).toBe(201);
    expect(response.body.config).toEqual({
      ...defaultConfig('derived', [{ target: 't1', weight: 1 }]),
      epochs: 4,
      model: {
        type: 'bake',
        baked_adapter_config: { r: 16, lora_alpha: 64, target_modules: 'all-linear', lora_dropout: 0, bias: 'none' },
        disable_activation_checkpoint: false,
      },
    });
  });

  it('refuses the reserved name batch with 422', async () => {
    const response = await post({ bake_name: 'batch', template: 'default' });
    expectError(response, 422, 'VALIDATION_ERROR', "Name 'batch' is reserved");
  });

  it('answers 404 in an unknown repo', async () => {
    const response = await api.request('POST', '/v1/repo/nope/bakes', { body: { bake_name: 'b1', template: 'default' } });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('PUT R/bakes/{bake_name} (deprecated)', () => {
  const definition = { template: 'default', overrides: { datasets: [{ target: 't1' }] } };

  it('creates a bake with 200', async () => {
    const response = await api.request('PUT', `${BAKES}/b1`, { body: definition });
    expect(response.status).toBe(200);
    expect(response.body.config).toEqual(defaultConfig('b1', [{ target: 't1', weight: 1 }]));
  });

  it('answers 200 for an identical repeat', async () => {
    await api.request('PUT', `${BAKES}/b1`, { body: definition });
    expect((await api.request('PUT', `${BAKES}/b1`, { body: definition })).status).toBe(200);
  });

  it('answers 409 for a different configuration', async () => {
    await api.request('PUT', `${BAKES}/b1`, { body: definition });
    const response = await api.request('PUT', `${BAKES}/b1`, { body: { ...definition, overrides: { ...definition.overrides, seed: 1 } } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('b1'));
  });
});

describe('GET R/bakes and R/bakes/{bake_name}', () => {
  it('returns the definition with a not_started status', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const response = await api.request('GET', `${BAKES}/b1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      status: 'not_started',
      lines: null,
      config: defaultConfig('b1', [{ target: 't1', weight: 1 }]),
      error: null,
      job_id: null,
      progress_percent: null,
      model_name: null,
      loss: null,
      template: 'default',
    });
  });

  it('shows the checkpoints of a complete bake as model names, newest first', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await completeBake('b1', [100, 183]);
    const response = await api.request('GET', `${BAKES}/b1`);
    expect(response.body).toMatchObject({
      status: 'complete',
      job_id: expect.any(Number),
      progress_percent: 100,
      lines: null,
      model_name: ['admin/r1/b1/183', 'admin/r1/b1/100'],
      loss: { latest_loss: 1, final_loss: 1, min_loss: 1, max_loss: 1 },
    });
  });

  it('answers 404 naming an unknown bake', async () => {
    expectError(await api.request('GET', `${BAKES}/x`), 404, 'RESOURCE_NOT_FOUND', "Bake 'x' not found");
  });

  it('lists bake names ascending', async () => {
    for (const name of ['b2', 'b3', 'b1']) await createBake(api.request, 'r1', name);
    expect((await api.request('GET', BAKES)).body).toEqual({ bakes: ['b1', 'b2', 'b3'] });
  });

  it('answers 404 listing bakes of an unknown repo', async () => {
    expectError(await api.request('GET', '/v1/repo/nope/bakes'), 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('R/bakes: the template a bake came from', () => {
  it('shows the template on create and GET, before and after the bake runs', async () => {
    await createBake(api.request, 'r1', 'base', { datasets: [{ target: 't1' }] });
    const created = await post({ bake_name: 'b2', template: 'base', overrides: { epochs: 2 } });
    expect(created.status).toBe(201);
    expect(created.body.template).toBe('base');
    expect((await api.request('GET', `${BAKES}/base`)).body.template).toBe('default');
    await completeBake('b2', [10]);
    expect((await api.request('GET', `${BAKES}/b2`)).body).toMatchObject({ status: 'complete', template: 'base' });
  });

  it('keeps the first template when an identical repeat names another that resolves to the same config', async () => {
    await createBake(api.request, 'r1', 'base', { datasets: [{ target: 't1' }] });
    expect((await post({ bake_name: 'b2', template: 'base' })).status).toBe(201);
    const repeat = await post({ bake_name: 'b2', template: 'default', overrides: { datasets: [{ target: 't1' }] } });
    expect(repeat.status).toBe(200);
    expect(repeat.body.template).toBe('base');
    expect((await api.request('GET', `${BAKES}/b2`)).body.template).toBe('base');
  });

  it('leaves the template out for a bake stored before templates were recorded', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const { template: _template, ...legacy } = (await api.store.get(keys.resource('admin', 'r1', 'bake', 'b1')))!;
    await api.store.put(legacy);
    const response = await api.request('GET', `${BAKES}/b1`);
    expect(response.status).toBe(200);
    expect(response.body).not.toHaveProperty('template');
    expect(response.body.config).toEqual(defaultConfig('b1', [{ target: 't1', weight: 1 }]));
  });
});

describe.each(['POST', 'PUT'])('%s R/bakes/batch', (method) => {
  it('is a batch create, never a run of a bake named batch', async () => {
    const response = await api.request(method, `${BAKES}/batch`, {
      body: { bakes: [{ bake_name: 'b1', template: 'default', overrides: { datasets: [{ target: 't1' }] } }] },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ created: ['b1'], failed: {} });
    expect((await api.request('GET', BAKES)).body).toEqual({ bakes: ['b1'] });
  });

  it('creates entries in order and reports bad ones in failed', async () => {
    await createBake(api.request, 'r1', 'taken');
    const response = await api.request(method, `${BAKES}/batch`, {
      body: {
        bakes: [
          { bake_name: 'first', template: 'default', overrides: { datasets: [{ target: 't1' }] } },
          { bake_name: 'second', template: 'first', overrides: { epochs: 2 } },
          { bake_name: 'bad_target', template: 'default', overrides: { datasets: [{ target: 'missing_target' }] } },
          { bake_name: 'bad_template', template: 'nonexistent' },
          { bake_name: 'taken', template: 'default', overrides: { epochs: 9 } },
          { bake_name: 'a/b', template: 'default' },
        ],
      },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      created: ['first', 'second'],
      failed: {
        bad_target: "Invalid dataset reference: target 'missing_target' not found",
        bad_template: "Template 'nonexistent' not found",
        taken: conflict('taken'),
        'a/b': "Name contains invalid character: '/'",
      },
    });
    expect((await api.request('GET', `${BAKES}/second`)).body.config).toMatchObject({ epochs: 2, datasets: [{ target: 't1', weight: 1 }] });
  });

  it('reports a schema failure of one entry in failed', async () => {
    const response = await api.request(method, `${BAKES}/batch`, {
      body: { bakes: [{ bake_name: 'neg', template: 'default', overrides: { datasets: [{ target: 't1', weight: -1 }] } }] },
    });
    expect(response.body.created).toEqual([]);
    expect(Object.keys(response.body.failed)).toEqual(['neg']);
  });

  it('refuses a malformed envelope with 422', async () => {
    const response = await api.request(method, `${BAKES}/batch`, { body: { bakes: 'b1' } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });
});

describe('DELETE R/bakes/{bake_name}', () => {
  it('deletes a bake', async () => {
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    const response = await api.request('DELETE', `${BAKES}/b1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Resource deleted successfully' });
    expect((await api.request('GET', BAKES)).body).toEqual({ bakes: [] });
  });

  it('answers 404 when deleting again', async () => {
    await createBake(api.request, 'r1', 'b1');
    await api.request('DELETE', `${BAKES}/b1`);
    expectError(await api.request('DELETE', `${BAKES}/b1`), 404, 'RESOURCE_NOT_FOUND', "Bake 'b1' not found");
  });

  it('refuses with 409 to delete the parent of another bake, naming the child', async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
    await completeBake('parent', [42]);
    await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } });
    const response = await api.request('DELETE', `${BAKES}/parent`);
    expectError(response, 409, 'RESOURCE_CONFLICT', "Bake 'parent' is the parent of bakes: child");
  });

  it('refuses with 409 to delete a parent whose child lives in another repo', async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
    await completeBake('parent', [42]);
    await seedTarget(api.request, 'r2');
    await createBake(api.request, 'r2', 'child', { datasets: [{ target: 't1' }], model: { parent_model_name: 'admin/r1/parent/42' } });
    const response = await api.request('DELETE', `${BAKES}/parent`);
    expectError(response, 409, 'RESOURCE_CONFLICT', "Bake 'parent' is the parent of bakes in other repositories");
    expect((await api.request('DELETE', '/v1/repo/r2/bakes/child')).status).toBe(200);
    expect((await api.request('DELETE', `${BAKES}/parent`)).status).toBe(200);
  });

  it('allows deleting the parent once the child is gone', async () => {
    await createBake(api.request, 'r1', 'parent', { datasets: [{ target: 't1' }] });
    await completeBake('parent', [42]);
    await createBake(api.request, 'r1', 'child', { model: { parent_model_name: 'admin/r1/parent/42' } });
    expect((await api.request('DELETE', `${BAKES}/child`)).status).toBe(200);
    expect((await api.request('DELETE', `${BAKES}/parent`)).status).toBe(200);
  });

  it('releases its dataset targets, so they can be deleted afterwards', async () => {
    await createTarget(api.request, 'r1', 't2');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }, { target: 't2' }] });
    await api.request('DELETE', `${BAKES}/b1`);
    expect((await api.request('DELETE', '/v1/repo/r1/targets/t1')).status).toBe(200);
    expect((await api.request('DELETE', '/v1/repo/r1/targets/t2')).status).toBe(200);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keys } from '#core/keys.ts';
import { createBake, createPrompt, createRepo, createTarget, createTestApp, expectError, HARDCODED, type TestApp } from '#test/support/app.ts';

const TARGETS = '/v1/repo/r1/targets';
const conflict = (name: string) =>
  `Target '${name}' already exists with different configuration. Targets are immutable and cannot be changed.`;

/** The resolved config of a target made from `default` with only the prompts and HARDCODED set. */
const DEFAULT_CONFIG = {
  teacher_prompt: 'teacher',
  student_prompt: 'student',
  generators: [{ ...HARDCODED, numq: 2 }],
  model_name: 'Qwen/Qwen3-32B',
  num_traj_per_stimulus: 1,
  max_concurrency: 10,
  temperature: 1,
  extra_kwargs: {},
};

let api: TestApp;
beforeEach(async () => {
  api = await createTestApp();
  await createRepo(api.request, 'r1');
  await createPrompt(api.request, 'r1', 'teacher');
  await createPrompt(api.request, 'r1', 'student', []);
});
afterEach(() => api.close());

const post = (body: unknown) => api.request('POST', TARGETS, { body });
const withGenerators = (generators: unknown[], extra: Record<string, unknown> = {}) =>
  post({ target_name: 't1', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators, ...extra } });

describe('POST R/targets: prompts and aliases', () => {
  it('creates a target from teacher_prompt and student_prompt with 201 and the resolved config', async () => {
    const response = await withGenerators([HARDCODED]);
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG, template: 'default' });
  });

  it('creates a target from the deprecated u/v and echoes them as teacher_prompt/student_prompt', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { u: 'teacher', v: 'student', generators: [HARDCODED] } });
    expect(response.status).toBe(201);
    expect(response.body.config).toEqual(DEFAULT_CONFIG);
    expect(response.body.config).not.toHaveProperty('u');
    expect(response.body.config).not.toHaveProperty('v');
  });

  it('accepts both forms with equal values (as bgit sends them)', async () => {
    const response = await post({
      target_name: 't1',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', u: 'teacher', student_prompt: 'student', v: 'student', generators: [HARDCODED] },
    });
    expect(response.status).toBe(201);
    expect(response.body.config).toEqual(DEFAULT_CONFIG);
  });

  it('refuses both forms with different values with 422', async () => {
    const response = await post({
      target_name: 't1',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', u: 'student', student_prompt: 'student' },
    });
    expectError(response, 422, 'VALIDATION_ERROR', "Conflicting values for 'teacher_prompt' and deprecated alias 'u'");
  });

  it('treats a u/v repeat of a teacher_prompt/student_prompt target as identical', async () => {
    await withGenerators([HARDCODED]);
    const response = await post({ target_name: 't1', template: 'default', overrides: { u: 'teacher', v: 'student', generators: [HARDCODED] } });
    expect(response.status).toBe(200);
  });

  it('lists both prompts when neither is given', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { generators: [HARDCODED] } });
    expectError(response, 400, 'INVALID_INPUT', "Missing required stim fields: ['teacher_prompt', 'student_prompt']");
  });

  it('lists both prompts when overrides are omitted', async () => {
    const response = await post({ target_name: 't1', template: 'default' });
    expectError(response, 400, 'INVALID_INPUT', "Missing required stim fields: ['teacher_prompt', 'student_prompt']");
  });

  it('lists only the missing student_prompt', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { teacher_prompt: 'teacher' } });
    expectError(response, 400, 'INVALID_INPUT', "Missing required stim fields: ['student_prompt']");
  });

  it('lists only the missing teacher_prompt', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { v: 'student' } });
    expectError(response, 400, 'INVALID_INPUT', "Missing required stim fields: ['teacher_prompt']");
  });

  it('refuses an unknown prompt with 400 naming it', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { teacher_prompt: 'x', student_prompt: 'student' } });
    expectError(response, 400, 'INVALID_INPUT', "Prompt 'x' not found");
  });

  it('accepts the same prompt as teacher and student', async () => {
    const response = await post({ target_name: 't1', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'teacher' } });
    expect(response.status).toBe(201);
  });

  it('refuses an unknown template with 400', async () => {
    const response = await post({ target_name: 't1', template: 'nonexistent', overrides: { teacher_prompt: 'teacher', student_prompt: 'student' } });
    expectError(response, 400, 'INVALID_INPUT', "Template 'nonexistent' not found");
  });

  it('refuses a missing template with 422', async () => {
    const response = await post({ target_name: 't1', overrides: { teacher_prompt: 'teacher', student_prompt: 'student' } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('refuses the reserved name batch with 422', async () => {
    const response = await post({ target_name: 'batch', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student' } });
    expectError(response, 422, 'VALIDATION_ERROR', "Name 'batch' is reserved");
  });

  it('answers 404 in an unknown repo', async () => {
    const response = await api.request('POST', '/v1/repo/nope/targets', {
      body: { target_name: 't1', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student' } },
    });
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('POST R/targets: templates and model_name', () => {
  it('inherits a target template, deep-merging overrides', async () => {
    await createTarget(api.request, 'r1', 'base', {
      generators: [HARDCODED, { type: 'persona', numq: 5, seed: 1 }],
      temperature: 0.7,
      max_tokens: 150,
      extra_kwargs: { top_p: 0.9, logit_bias: { '42': 1 } },
    });
    const response = await post({
      target_name: 'child',
      template: 'base',
      overrides: {
        generators: [{ type: 'hardcoded', questions: ['Only one?'] }],
        temperature: null,
        max_concurrency: 50,
        extra_kwargs: { frequency_penalty: 0.5, logit_bias: { '7': -1 } },
      },
    });
    expect(response.status).toBe(201);
    expect(response.body.config).toEqual({
      teacher_prompt: 'teacher',
      student_prompt: 'student',
      // Arrays are replaced whole.
      generators: [{ type: 'hardcoded', questions: ['Only one?'], numq: 1 }],
      model_name: 'Qwen/Qwen3-32B',
      num_traj_per_stimulus: 1,
      max_concurrency: 50,
      // null keeps the template's value.
      temperature: 0.7,
      max_tokens: 150,
      // Nested objects merge key by key.
      extra_kwargs: { top_p: 0.9, frequency_penalty: 0.5, logit_bias: { '42': 1, '7': -1 } },
    });
  });

  it('takes the prompts from the template when overrides leave them out', async () => {
    await createTarget(api.request, 'r1', 'base');
    const response = await post({ target_name: 'child', template: 'base', overrides: { num_traj_per_stimulus: 3 } });
    expect(response.status).toBe(201);
    expect(response.body.config).toEqual({ ...DEFAULT_CONFIG, num_traj_per_stimulus: 3 });
  });

  it('treats a target created from a template as identical to the same resolved config from default', async () => {
    await createTarget(api.request, 'r1', 'base');
    expect((await post({ target_name: 'child', template: 'base', overrides: { num_traj_per_stimulus: 3 } })).status).toBe(201);
    const repeat = await post({
      target_name: 'child',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED], num_traj_per_stimulus: 3 },
    });
    expect(repeat.status).toBe(200);
  });

  it("defaults model_name to the repo's base model", async () => {
    await createRepo(api.request, 'small', 'Qwen/Qwen3-8B');
    await createPrompt(api.request, 'small', 'teacher');
    await createPrompt(api.request, 'small', 'student', []);
    const response = await createTarget(api.request, 'small', 't1');
    expect(response.config.model_name).toBe('Qwen/Qwen3-8B');
  });

  it('accepts another catalog model as model_name', async () => {
    const response = await withGenerators([HARDCODED], { model_name: 'bakehouse/toy-instruct' });
    expect(response.status).toBe(201);
    expect(response.body.config.model_name).toBe('bakehouse/toy-instruct');
  });

  it('refuses an unknown model_name with 400', async () => {
    const response = await withGenerators([HARDCODED], { model_name: 'nobody/none' });
    expectError(response, 400, 'INVALID_INPUT', "Unknown model 'nobody/none'");
  });

  it('refuses a checkpoint name of a bake that does not exist with 400', async () => {
    const response = await withGenerators([HARDCODED], { model_name: 'admin/r1/ghost/10' });
    expectError(response, 400, 'INVALID_INPUT', "Unknown model 'admin/r1/ghost/10'");
  });

  it('keeps unknown keys inside overrides and echoes them', async () => {
    const response = await withGenerators([{ ...HARDCODED, shuffle: true }], { bgit_note: 'from yaml', nested: { a: 1 } });
    expect(response.status).toBe(201);
    expect(response.body.config).toMatchObject({ bgit_note: 'from yaml', nested: { a: 1 } });
    expect(response.body.config.generators[0]).toMatchObject({ shuffle: true });
    expect((await api.request('GET', `${TARGETS}/t1`)).body.config).toMatchObject({ bgit_note: 'from yaml' });
  });

  it('ignores unknown top-level keys', async () => {
    const response = await post({
      target_name: 't1',
      template: 'default',
      description: 'ignored',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED] },
    });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG, template: 'default' });
  });

  it('refuses a temperature above 2 with 422', async () => {
    const response = await withGenerators([HARDCODED], { temperature: 2.5 });
    expectError(response, 422, 'VALIDATION_ERROR');
  });
});

describe('R/targets: the template a target came from', () => {
  it('shows the template on create and GET: default, or the target it was made from', async () => {
    await createTarget(api.request, 'r1', 'base');
    const created = await post({ target_name: 'child', template: 'base', overrides: { num_traj_per_stimulus: 3 } });
    expect(created.status).toBe(201);
    expect(created.body.template).toBe('base');
    expect((await api.request('GET', `${TARGETS}/child`)).body.template).toBe('base');
    expect((await api.request('GET', `${TARGETS}/base`)).body.template).toBe('default');
  });

  it('keeps the first template when an identical repeat names another that resolves to the same config', async () => {
    await createTarget(api.request, 'r1', 'base');
    await post({ target_name: 'child', template: 'base', overrides: { num_traj_per_stimulus: 3 } });
    const repeat = await post({
      target_name: 'child',
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED], num_traj_per_stimulus: 3 },
    });
    expect(repeat.status).toBe(200);
    expect(repeat.body.template).toBe('base');
    expect((await api.request('GET', `${TARGETS}/child`)).body.template).toBe('base');
  });

  it('keeps the first template through the deprecated PUT and batch creates', async () => {
    await createTarget(api.request, 'r1', 'base');
    const definition = { template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED] } };
    expect((await api.request('PUT', `${TARGETS}/again`, { body: { ...definition, template: 'base', overrides: null } })).body.template).toBe('base');
    expect((await api.request('PUT', `${TARGETS}/again`, { body: definition })).body.template).toBe('base');
    const batch = await api.request('POST', `${TARGETS}/batch`, { body: { targets: [{ target_name: 'viaBatch', template: 'base' }] } });
    expect(batch.body).toEqual({ created: ['viaBatch'], failed: {} });
    expect((await api.request('GET', `${TARGETS}/viaBatch`)).body.template).toBe('base');
  });

  it('leaves the template out for a target stored before templates were recorded', async () => {
    await createTarget(api.request, 'r1', 't1');
    const key = keys.resource('admin', 'r1', 'target', 't1');
    const { template: _template, ...legacy } = (await api.store.get(key))!;
    await api.store.put(legacy);
    const response = await api.request('GET', `${TARGETS}/t1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG });
  });
});

describe('POST R/targets: generators', () => {
  it('defaults a hardcoded numq to the number of questions', async () => {
    const response = await withGenerators([{ type: 'hardcoded', questions: ['a', 'b', 'c'] }]);
    expect(response.body.config.generators).toEqual([{ type: 'hardcoded', questions: ['a', 'b', 'c'], numq: 3 }]);
  });

  it('keeps a hardcoded numq below the number of questions', async () => {
    const response = await withGenerators([{ type: 'hardcoded', questions: ['a', 'b', 'c'], numq: 2 }]);
    expect(response.status).toBe(201);
    expect(response.body.config.generators[0].numq).toBe(2);
  });

  it('refuses a hardcoded numq above the number of questions with 400', async () => {
    const response = await withGenerators([{ type: 'hardcoded', questions: ['a'], numq: 2 }]);
    expectError(response, 400, 'INVALID_INPUT', /numq/);
  });

  it('refuses a hardcoded generator without questions with 400', async () => {
    const response = await withGenerators([{ type: 'hardcoded' }]);
    expectError(response, 400, 'INVALID_INPUT', /questions/);
  });

  it('accepts oneshot_qs with numq', async () => {
    const generator = { type: 'oneshot_qs', model: 'claude-sonnet-4-5-20250929', numq: 10, temperature: 1.0 };
    const response = await withGenerators([generator]);
    expect(response.status).toBe(201);
    expect(response.body.config.generators).toEqual([generator]);
  });

  it('refuses oneshot_qs without numq with 400', async () => {
    const response = await withGenerators([{ type: 'oneshot_qs', model: 'claude-sonnet-4-5-20250929' }]);
    expectError(response, 400, 'INVALID_INPUT', /numq/);
  });

  it('accepts from_dataset with a documented dataset', async () => {
    const response = await withGenerators([{ type: 'from_dataset', dataset: 'code_contests', numq: 15, seed: 42 }]);
    expect(response.status).toBe(201);
  });

  it('refuses from_dataset with an unknown dataset with 400', async () => {
    const response = await withGenerators([{ type: 'from_dataset', dataset: 'no_such_dataset', numq: 5 }]);
    expectError(response, 400, 'INVALID_INPUT', /no_such_dataset/);
  });

  it('accepts persona with numq and seed', async () => {
    const response = await withGenerators([{ type: 'persona', numq: 5, seed: 123, temperature: 0.9 }]);
    expect(response.status).toBe(201);
  });

  it('accepts custom with an uploaded template, stored under templates/', async () => {
    const response = await withGenerators([
      { type: 'custom', numq: 3, template_path: 'my/dir/questions.txt', template_content: 'Write ${numq} questions about ${prompt_u}.' },
    ]);
    expect(response.status).toBe(201);
    expect(response.body.config.generators[0].template_path).toBe('templates/questions.txt');
  });

  it('refuses custom without a template with 400', async () => {
    const response = await withGenerators([{ type: 'custom', numq: 3 }]);
    expectError(response, 400, 'INVALID_INPUT', /template/);
  });

  it('refuses template_content without ${numq} with 422', async () => {
    const response = await withGenerators([{ type: 'oneshot_qs', numq: 3, template_content: 'About ${prompt_u}.' }]);
    expectError(response, 422, 'VALIDATION_ERROR', /\$\{numq\}/);
  });

  it('refuses template_content without ${prompt_u} with 422', async () => {
    const response = await withGenerators([{ type: 'oneshot_qs', numq: 3, template_content: 'Write ${numq} questions.' }]);
    expectError(response, 422, 'VALIDATION_ERROR', /\$\{prompt_u\}/);
  });

  it('refuses template_content over 1 MB with 422', async () => {
    const content = `\${numq} \${prompt_u} ${'x'.repeat(1024 * 1024)}`;
    const response = await withGenerators([{ type: 'custom', numq: 3, template_content: content }]);
    expectError(response, 422, 'VALIDATION_ERROR', /1 MB/);
  });

  it('refuses an unknown generator type with 422', async () => {
    const response = await withGenerators([{ type: 'telepathy', numq: 3 }]);
    expectError(response, 422, 'VALIDATION_ERROR');
  });

  it('accepts the upstream spec example', async () => {
    await createPrompt(api.request, 'r1', 'system_prompt_v1');
    await createPrompt(api.request, 'r1', 'user_prompt_v1', []);
    const response = await post({
      target_name: 'example',
      template: 'default',
      overrides: {
        generators: [
          { type: 'oneshot_qs', model: 'claude-3-5-sonnet-20241022', numq: 10, temperature: 1.0 },
          { type: 'from_dataset', dataset: 'code_contests', numq: 15, seed: 42 },
          { type: 'hardcoded', questions: ['Write a function to reverse a string', 'Implement binary search', 'Create a linked list class'], rollout_with_conditioned: false },
          { type: 'persona', numq: 5, seed: 123, temperature: 0.9 },
        ],
        max_concurrency: 50,
        max_tokens: 150,
        model_name: 'Qwen/Qwen3-32B',
        num_traj_per_stimulus: 5,
        student_prompt: 'user_prompt_v1',
        teacher_prompt: 'system_prompt_v1',
        temperature: 1.0,
      },
    });
    expect(response.status).toBe(201);
    expect(response.body.config.generators[2].numq).toBe(3);
  });
});

describe('POST R/targets: immutability', () => {
  it('answers 200 for an identical repeat', async () => {
    await withGenerators([HARDCODED]);
    const response = await withGenerators([HARDCODED]);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG, template: 'default' });
  });

  it('treats an explicit default (numq = number of questions) as identical', async () => {
    await withGenerators([HARDCODED]);
    const response = await withGenerators([{ ...HARDCODED, numq: 2 }], { model_name: 'Qwen/Qwen3-32B', max_concurrency: 10 });
    expect(response.status).toBe(200);
  });

  it('answers 409 with the spec message for a different configuration', async () => {
    await withGenerators([HARDCODED]);
    const response = await withGenerators([HARDCODED], { temperature: 0.2 });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('t1'));
    expect(response.body).toEqual({ message: conflict('t1'), code: 'RESOURCE_CONFLICT' });
  });
});

describe('PUT R/targets/{target_name} (deprecated)', () => {
  const put = (name: string, body: unknown) => api.request('PUT', `${TARGETS}/${name}`, { body });
  const definition = { template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED] } };

  it('creates a target with 200', async () => {
    const response = await put('t1', definition);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG, template: 'default' });
  });

  it('answers 200 for an identical repeat', async () => {
    await put('t1', definition);
    expect((await put('t1', definition)).status).toBe(200);
  });

  it('answers 409 for a different configuration', async () => {
    await put('t1', definition);
    const response = await put('t1', { ...definition, overrides: { ...definition.overrides, max_tokens: 10 } });
    expectError(response, 409, 'RESOURCE_CONFLICT', conflict('t1'));
  });

  it('answers 400 for an unknown template', async () => {
    const response = await put('t1', { ...definition, template: 'nonexistent' });
    expectError(response, 400, 'INVALID_INPUT', "Template 'nonexistent' not found");
  });

  it('refuses a percent-encoded slash in the name with 422', async () => {
    const response = await put('r%2Fx', definition);
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });
});

describe.each(['POST', 'PUT'])('%s R/targets/batch', (method) => {
  it('creates entries in order, so a later one may use an earlier one as template', async () => {
    const response = await api.request(method, `${TARGETS}/batch`, {
      body: {
        targets: [
          { target_name: 'first', template: 'default', overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED] } },
          { target_name: 'second', template: 'first', overrides: { num_traj_per_stimulus: 4 } },
        ],
      },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ created: ['first', 'second'], failed: {} });
    expect((await api.request('GET', `${TARGETS}/second`)).body.config).toEqual({ ...DEFAULT_CONFIG, num_traj_per_stimulus: 4 });
  });

  it('reports bad entries in failed and creates the rest', async () => {
    await createTarget(api.request, 'r1', 'taken');
    const good = { teacher_prompt: 'teacher', student_prompt: 'student', generators: [HARDCODED] };
    const response = await api.request(method, `${TARGETS}/batch`, {
      body: {
        targets: [
          { target_name: 'a/b', template: 'default', overrides: good },
          { target_name: 'no_template', template: 'nonexistent', overrides: good },
          { target_name: 'no_prompts', template: 'default' },
          { target_name: 'taken', template: 'default', overrides: { ...good, max_tokens: 5 } },
          { target_name: 'batch', template: 'default', overrides: good },
          { target_name: 'ok', template: 'default', overrides: good },
        ],
      },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      created: ['ok'],
      failed: {
        'a/b': "Name contains invalid character: '/'",
        no_template: "Template 'nonexistent' not found",
        no_prompts: "Missing required stim fields: ['teacher_prompt', 'student_prompt']",
        taken: conflict('taken'),
        batch: "Name 'batch' is reserved",
      },
    });
  });

  it('refuses a malformed envelope with 422', async () => {
    const response = await api.request(method, `${TARGETS}/batch`, { body: { targets: { t1: {} } } });
    expectError(response, 422, 'VALIDATION_ERROR');
  });
});

describe('GET R/targets and R/targets/{target_name}', () => {
  it('lists target names ascending', async () => {
    for (const name of ['t3', 't1', 't2']) await createTarget(api.request, 'r1', name);
    expect((await api.request('GET', TARGETS)).body).toEqual({ targets: ['t1', 't2', 't3'] });
  });

  it('answers 404 listing targets of an unknown repo', async () => {
    expectError(await api.request('GET', '/v1/repo/nope/targets'), 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });

  it('gets one target with its resolved config', async () => {
    await createTarget(api.request, 'r1', 't1');
    const response = await api.request('GET', `${TARGETS}/t1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ target_name: 't1', config: DEFAULT_CONFIG, template: 'default' });
  });

  it('answers 404 naming an unknown target', async () => {
    expectError(await api.request('GET', `${TARGETS}/x`), 404, 'RESOURCE_NOT_FOUND', "Target 'x' not found");
  });
});

describe('DELETE R/targets/{target_name}', () => {
  it('deletes a target', async () => {
    await createTarget(api.request, 'r1', 't1');
    const response = await api.request('DELETE', `${TARGETS}/t1`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ message: 'Resource deleted successfully' });
    expect((await api.request('GET', TARGETS)).body).toEqual({ targets: [] });
  });

  it('answers 404 when deleting again', async () => {
    await createTarget(api.request, 'r1', 't1');
    await api.request('DELETE', `${TARGETS}/t1`);
    expectError(await api.request('DELETE', `${TARGETS}/t1`), 404, 'RESOURCE_NOT_FOUND', "Target 't1' not found");
  });

  it('accepts an empty body under a JSON content type', async () => {
    await createTarget(api.request, 'r1', 't1');
    const response = await api.request('DELETE', `${TARGETS}/t1`, { body: '', headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(200);
  });

  it('refuses with 409 while bakes use the target, naming them', async () => {
    await createTarget(api.request, 'r1', 't1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await createBake(api.request, 'r1', 'b2', { datasets: [{ target: 't1', weight: 0.5 }] });
    const response = await api.request('DELETE', `${TARGETS}/t1`);
    expectError(response, 409, 'RESOURCE_CONFLICT', "Target 't1' is used by bakes: b1, b2");
    expect((await api.request('GET', `${TARGETS}/t1`)).status).toBe(200);
  });

  it('allows the delete once the bakes using it are gone', async () => {
    await createTarget(api.request, 'r1', 't1');
    await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1' }] });
    await api.request('DELETE', '/v1/repo/r1/bakes/b1');
    expect((await api.request('DELETE', `${TARGETS}/t1`)).status).toBe(200);
  });
});

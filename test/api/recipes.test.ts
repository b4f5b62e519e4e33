import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBake, createPrompt, createRepo, createTarget, createTestApp, expectError, HARDCODED, type TestApp, completeBake as runToCompletion } from '#test/support/app.ts';

const R = '/v1/repo/r1';

const TEACHER = [{ role: 'system', content: 'Think step by step.' }];
const COACH = [{ role: 'system', content: 'Use tools.' }];
const TOOLS = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }];

let api: TestApp;
let t1Config: Record<string, unknown>;
let t2Config: Record<string, unknown>;

/**
 * r1 holds prompts teacher, coach (with tools) and student (empty); targets t1 (teacher → student)
 * and t2 (coach → student); bake b1 trained on both targets.
 */
beforeEach(async () => {
  api = await createTestApp();
  await createRepo(api.request, 'r1', 'Qwen/Qwen3-8B');
  await createPrompt(api.request, 'r1', 'teacher', TEACHER);
  await createPrompt(api.request, 'r1', 'student', []);
  await api.request('POST', `${R}/prompts`, { body: { prompt_name: 'coach', messages: COACH, tools: TOOLS } });
  t1Config = (await createTarget(api.request, 'r1', 't1')).config;
  t2Config = (await createTarget(api.request, 'r1', 't2', { teacher_prompt: 'coach', num_traj_per_stimulus: 3 })).config;
  await createBake(api.request, 'r1', 'b1', { datasets: [{ target: 't1', weight: 0.8 }, { target: 't2', weight: 0.2 }] });
});
afterEach(() => api.close());

/** Runs a bake to completion through the job pipeline (test engine), saving these checkpoints. */
async function completeBake(name: string, checkpoints: number[]): Promise<void> {
  await runToCompletion(api, 'r1', name, checkpoints);
}

/** b1 finished at step 42; child trains on t2 starting from b1's checkpoint. */
async function addChild(): Promise<void> {
  await completeBake('b1', [42]);
  await createBake(api.request, 'r1', 'child', { datasets: [{ target: 't2' }], model: { parent_model_name: 'admin/r1/b1/42' } });
}

const sortEdges = (edges: string[][]) => [...edges].map((edge) => edge.join(' ')).sort();

describe('GET R/recipe/{bake_name}/dependency-graph', () => {
  it('lists the bake, its targets and their prompts with dependent → dependency edges', async () => {
    const response = await api.request('GET', `${R}/recipe/b1/dependency-graph`);
    expect(response.status).toBe(200);
    const b1 = (await api.request('GET', `${R}/bakes/b1`)).body.config;
    expect(response.body).toEqual({
      base_model: 'Qwen/Qwen3-8B',
      bakes: { b1 },
      targets: { t1: t1Config, t2: t2Config },
      prompts: { teacher: 'prompts/teacher.yml', student: 'prompts/student.yml', coach: 'prompts/coach.yml' },
      edges: expect.any(Array),
    });
    expect(sortEdges(response.body.edges)).toEqual(
      sortEdges([
        ['bake', 'b1', 'target', 't1'],
        ['bake', 'b1', 'target', 't2'],
        ['target', 't1', 'prompt', 'teacher'],
        ['target', 't1', 'prompt', 'student'],
        ['target', 't2', 'prompt', 'coach'],
        ['target', 't2', 'prompt', 'student'],
      ]),
    );
  });

  it('follows a same-repo parent bake', async () => {
    await addChild();
    const response = await api.request('GET', `${R}/recipe/child/dependency-graph`);
    expect(Object.keys(response.body.bakes).sort()).toEqual(['b1', 'child']);
    expect(Object.keys(response.body.targets).sort()).toEqual(['t1', 't2']);
    expect(response.body.edges).toContainEqual(['bake', 'child', 'bake', 'b1']);
    expect(response.body.edges).toContainEqual(['bake', 'child', 'target', 't2']);
    expect(response.body.edges).toContainEqual(['bake', 'b1', 'target', 't1']);
  });

  it("follows a target whose rollout model is a checkpoint of a bake in the repo", async () => {
    await completeBake('b1', [42]);
    await createTarget(api.request, 'r1', 'from_baked', { model_name: 'admin/r1/b1/42' });
    await createBake(api.request, 'r1', 'b2', { datasets: [{ target: 'from_baked' }] });
    const response = await api.request('GET', `${R}/recipe/b2/dependency-graph`);
    expect(Object.keys(response.body.bakes).sort()).toEqual(['b1', 'b2']);
    expect(response.body.edges).toContainEqual(['target', 'from_baked', 'bake', 'b1']);
  });

  it('leaves out resources the bake does not depend on', async () => {
    await createPrompt(api.request, 'r1', 'unused');
    await createTarget(api.request, 'r1', 't3', { teacher_prompt: 'unused' });
    await createBake(api.request, 'r1', 'b2', { datasets: [{ target: 't1' }] });
    const response = await api.request('GET', `${R}/recipe/b2/dependency-graph`);
    expect(Object.keys(response.body.bakes)).toEqual(['b2']);
    expect(Object.keys(response.body.targets)).toEqual(['t1']);
    expect(Object.keys(response.body.prompts).sort()).toEqual(['student', 'teacher']);
  });

  it('answers 404 for an unknown bake', async () => {
    expectError(await api.request('GET', `${R}/recipe/nope/dependency-graph`), 404, 'RESOURCE_NOT_FOUND', "Bake 'nope' not found");
  });

  it('answers 404 for an unknown repo', async () => {
    const response = await api.request('GET', '/v1/repo/nope/recipe/b1/dependency-graph');
    expectError(response, 404, 'RESOURCE_NOT_FOUND', "Repository 'nope' not found");
  });
});

describe('GET R/recipe/{bake_name}/recreation-plan', () => {
  it('orders prompts, targets, stim and rollout runs, then the bake, with the spec step shapes', async () => {
    const response = await api.request('GET', `${R}/recipe/b1/recreation-plan`);
    expect(response.status).toBe(200);
    const bakeConfig = (await api.request('GET', `${R}/bakes/b1`)).body.config;
    const { checkpoint: _checkpoint, ...bakeRest } = bakeConfig;
    expect(response.body).toEqual({
      base_model: 'Qwen/Qwen3-8B',
      total_steps: 11,
      steps: [
        {
          step: 1,
          action: 'create_prompt',
          resource_type: 'prompt',
          resource_name: 'coach',
          dependencies: [],
          config: { name: 'coach', content: { messages: COACH, tools: TOOLS }, messages: COACH, tools: TOOLS },
        },
        {
          step: 2,
          action: 'create_prompt',
          resource_type: 'prompt',
          resource_name: 'student',
          dependencies: [],
          config: { name: 'student', content: { messages: [] }, messages: [] },
        },
        {
          step: 3,
          action: 'create_prompt',
          resource_type: 'prompt',
          resource_name: 'teacher',
          dependencies: [],
          config: { name: 'teacher', content: { messages: TEACHER }, messages: TEACHER },
        },
        {
          step: 4,
          action: 'create_target',
          resource_type: 'target',
          resource_name: 't1',
          dependencies: ['prompt:teacher', 'prompt:student'],
          config: t1Config,
        },
        {
          step: 5,
          action: 'create_target',
          resource_type: 'target',
          resource_name: 't2',
          dependencies: ['prompt:coach', 'prompt:student'],
          config: t2Config,
        },
        { step: 6, action: 'run_stim', resource_type: 'target', resource_name: 't1', dependencies: ['target:t1'], config: {} },
        { step: 7, action: 'run_rollout', resource_type: 'target', resource_name: 't1', dependencies: ['target:t1'], config: {} },
        { step: 8, action: 'run_stim', resource_type: 'target', resource_name: 't2', dependencies: ['target:t2'], config: {} },
        { step: 9, action: 'run_rollout', resource_type: 'target', resource_name: 't2', dependencies: ['target:t2'], config: {} },
        {
          step: 10,
          action: 'create_bake',
          resource_type: 'bake',
          resource_name: 'b1',
          dependencies: ['target:t1', 'target:t2'],
          config: { ...bakeRest, checkpoint: [{ type: 'huggingface', save_end_of_training: true }] },
        },
        {
          step: 11,
          action: 'run_bake',
          resource_type: 'bake',
          resource_name: 'b1',
          dependencies: ['bake:b1', 'target:t1:rollout_complete', 'target:t2:rollout_complete'],
          config: {},
        },
      ],
      resources: {
        prompts: expect.any(Array),
        targets: expect.any(Array),
        bakes: [{ bake_name: 'b1', model_names: [] }],
      },
    });
    expect([...response.body.resources.prompts].sort()).toEqual(['coach', 'student', 'teacher']);
    expect([...response.body.resources.targets].sort()).toEqual(['t1', 't2']);
  });

  it('uses teacher_prompt/student_prompt, never u/v, in target steps', async () => {
    const response = await api.request('GET', `${R}/recipe/b1/recreation-plan`);
    const target = response.body.steps.find((step: { action: string }) => step.action === 'create_target');
    expect(target.config).toMatchObject({ teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ ...HARDCODED, numq: 2 }] });
    expect(target.config).not.toHaveProperty('u');
    expect(target.config).not.toHaveProperty('v');
  });

  it('creates and runs a parent bake before its child, with the parent in the dependencies', async () => {
    await addChild();
    const response = await api.request('GET', `${R}/recipe/child/recreation-plan`);
    const steps = response.body.steps as { step: number; action: string; resource_name: string; dependencies: string[] }[];
    expect(response.body.total_steps).toBe(steps.length);
    const at = (action: string, name: string) => steps.findIndex((step) => step.action === action && step.resource_name === name);

    expect(steps.slice(-4).map((step) => `${step.action}:${step.resource_name}`)).toEqual([
      'create_bake:b1',
      'run_bake:b1',
      'create_bake:child',
      'run_bake:child',
    ]);
    expect(at('run_rollout', 't1')).toBeLessThan(at('run_bake', 'b1'));
    expect(steps[at('create_bake', 'child')]!.dependencies).toEqual(['target:t2', 'bake:b1']);
    expect(steps[at('run_bake', 'child')]!.dependencies).toEqual(['bake:child', 'target:t2:rollout_complete', 'bake:b1:complete']);
    expect(steps.map((step) => step.step)).toEqual(steps.map((_, index) => index + 1));
    expect(response.body.resources.bakes).toEqual(
      expect.arrayContaining([
        { bake_name: 'child', model_names: [] },
        { bake_name: 'b1', model_names: ['admin/r1/b1/42'] },
      ]),
    );
  });

  it('creates a template target before a target made from it, with target:<template> in its dependencies', async () => {
    // 'a_child' sorts before its template 't1', so only the dependency puts t1 first.
    await createTarget(api.request, 'r1', 'a_child', { num_traj_per_stimulus: 2 }, 't1');
    await createBake(api.request, 'r1', 'both', { datasets: [{ target: 'a_child' }, { target: 't1' }] });
    const steps = (await api.request('GET', `${R}/recipe/both/recreation-plan`)).body.steps as { action: string; resource_name: string; dependencies: string[] }[];
    const targetSteps = steps.filter((step) => step.action === 'create_target');
    expect(targetSteps.map((step) => step.resource_name)).toEqual(['t1', 'a_child']);
    expect(targetSteps[1]!.dependencies).toEqual(['prompt:teacher', 'prompt:student', 'target:t1']);
    expect(targetSteps[0]!.dependencies).toEqual(['prompt:teacher', 'prompt:student']);
  });

  it('leaves out target:<template> when the plan does not recreate the template, since the step config is resolved', async () => {
    await createTarget(api.request, 'r1', 'a_child', { num_traj_per_stimulus: 2 }, 't1');
    await createBake(api.request, 'r1', 'only_child', { datasets: [{ target: 'a_child' }] });
    const plan = (await api.request('GET', `${R}/recipe/only_child/recreation-plan`)).body;
    const steps = plan.steps as { action: string; resource_name: string; dependencies: string[]; config: Record<string, unknown> }[];
    expect(plan.resources.targets).toEqual(['a_child']);
    const create = steps.find((step) => step.action === 'create_target')!;
    expect(create.dependencies).toEqual(['prompt:teacher', 'prompt:student']);
    expect(create.config).toMatchObject({ teacher_prompt: 'teacher', num_traj_per_stimulus: 2 });
  });

  it('answers 404 for an unknown bake', async () => {
    expectError(await api.request('GET', `${R}/recipe/nope/recreation-plan`), 404, 'RESOURCE_NOT_FOUND', "Bake 'nope' not found");
  });

  it('refuses an invalid bake name with 422', async () => {
    const response = await api.request('GET', `${R}/recipe/r%2Fx/recreation-plan`);
    expectError(response, 422, 'VALIDATION_ERROR', "Name contains invalid character: '/'");
  });
});

describe('GET R/tree', () => {
  it('lists every bake as pending with no checkpoints before any run', async () => {
    await createBake(api.request, 'r1', 'b2');
    const response = await api.request('GET', `${R}/tree`);
    expect(response.status).toBe(200);
    const configOf = async (name: string) => (await api.request('GET', `${R}/bakes/${name}`)).body.config;
    expect(response.body).toEqual({
      base_model: 'Qwen/Qwen3-8B',
      bakes: {
        b1: { status: 'pending', config: await configOf('b1'), model_name: [], checkpoints: [] },
        b2: { status: 'pending', config: await configOf('b2'), model_name: [], checkpoints: [] },
      },
      edges: [],
    });
  });

  it('shows a finished parent with its checkpoints and the parent edge', async () => {
    await addChild();
    const response = await api.request('GET', `${R}/tree`);
    expect(response.body.bakes.b1).toMatchObject({ status: 'complete', model_name: ['admin/r1/b1/42'], checkpoints: [42] });
    expect(response.body.bakes.child).toMatchObject({ status: 'pending', model_name: [], checkpoints: [] });
    expect(response.body.edges).toEqual([['bake', 'child', 'bake', 'b1']]);
  });

  it('lists checkpoints newest first', async () => {
    await completeBake('b1', [21, 183, 100]);
    const response = await api.request('GET', `${R}/tree`);
    expect(response.body.bakes.b1).toMatchObject({
      checkpoints: [183, 100, 21],
      model_name: ['admin/r1/b1/183', 'admin/r1/b1/100', 'admin/r1/b1/21'],
    });
  });
});

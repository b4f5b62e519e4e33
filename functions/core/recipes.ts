import type { Item, Store } from '../ports/store.ts';
import type { DependencyGraph, RecreationPlan, RecreationPlanStep, RepoTree, TREE_STATUSES } from '../schemas/bread.ts';
import type { Actor } from './actor.ts';
import { bakeModelNames, bakeStatus, parentBakeOf, templateOf, type BakeConfig } from './bakes.ts';
import { NotFoundError } from './errors.ts';
import { keys } from './keys.ts';
import { checkpointsOf, parseCheckpointName } from './models.ts';
import { assertValidName } from './names.ts';
import type { Repo, RepoService } from './repos.ts';
import type { TargetConfig } from '../schemas/bread.ts';

type Edge = [string, string, string, string];
type Action = RecreationPlanStep['action'];

/** A repo's prompts, targets and bakes, read once and walked in memory. */
interface RepoContents {
  actor: Actor;
  repo: Repo;
  prompts: Map<string, Item>;
  targets: Map<string, Item>;
  bakes: Map<string, Item>;
}

/** What one bake needs to be recreated, found breadth-first (bread-api.md §13.1). */
interface Closure {
  bakes: string[];
  targets: string[];
  prompts: string[];
  edges: Edge[];
}

export class RecipeService {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
  ) {}

  async dependencyGraph(actor: Actor, repoName: string, bakeName: string): Promise<DependencyGraph> {
    const contents = await this.load(actor, repoName);
    const closure = closureOf(contents, bakeName);
    return {
      base_model: contents.repo.base_model,
      bakes: Object.fromEntries(closure.bakes.map((name) => [name, contents.bakes.get(name)!.config as BakeConfig])),
      targets: Object.fromEntries(closure.targets.map((name) => [name, contents.targets.get(name)!.config as TargetConfig])),
      prompts: Object.fromEntries(closure.prompts.map((name) => [name, `prompts/${name}.yml`])),
      edges: closure.edges,
    };
  }

  async recreationPlan(actor: Actor, repoName: string, bakeName: string): Promise<RecreationPlan> {
    const contents = await this.load(actor, repoName);
    const closure = closureOf(contents, bakeName);
    const steps = orderSteps(planSteps(contents, closure));
    return {
      base_model: contents.repo.base_model,
      total_steps: steps.length,
      steps,
      resources: {
        prompts: closure.prompts,
        targets: closure.targets,
        bakes: closure.bakes.map((name) => ({
          bake_name: name,
          model_names: bakeModelNames(actor.userId, repoName, name, checkpointsOf(contents.bakes.get(name)!)),
        })),
      },
    };
  }

  async tree(actor: Actor, repoName: string): Promise<RepoTree> {
    const contents = await this.load(actor, repoName, { bakesOnly: true });
    const bakes: RepoTree['bakes'] = {};
    const edges: Edge[] = [];
    for (const [name, item] of contents.bakes) {
      bakes[name] = {
        status: treeStatus(bakeStatus(item)),
        config: item.config as BakeConfig,
        model_name: bakeModelNames(actor.userId, repoName, name, checkpointsOf(item)),
        checkpoints: checkpointsOf(item),
      };
      const parent = parentBakeOf(actor.userId, repoName, item.config as BakeConfig);
      if (parent) edges.push(['bake', name, 'bake', parent]);
    }
    return { base_model: contents.repo.base_model, bakes, edges };
  }

  private async load(actor: Actor, repoName: string, options: { bakesOnly?: boolean } = {}): Promise<RepoContents> {
    const repo = await this.repos.get(actor, repoName);
    const read = async (kind: 'prompt' | 'target' | 'bake', nameField: string) => {
      const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, kind));
      return new Map(items.map((item) => [item[nameField] as string, item]));
    };
    const [prompts, targets, bakes] = await Promise.all([
      options.bakesOnly ? new Map<string, Item>() : read('prompt', 'prompt_name'),
      options.bakesOnly ? new Map<string, Item>() : read('target', 'target_name'),
      read('bake', 'bake_name'),
    ]);
    return { actor, repo, prompts, targets, bakes };
  }
}

function treeStatus(status: string): (typeof TREE_STATUSES)[number] {
  if (status === 'not_started') return 'pending';
  if (status === 'running' || status === 'complete' || status === 'failed') return status;
  return 'unknown';
}

/** A target's rollout model when it is a checkpoint of a bake in the same repo. */
function modelBakeOf(contents: RepoContents, config: TargetConfig): string | undefined {
  const checkpoint = parseCheckpointName(config.model_name);
  if (checkpoint?.userId !== contents.actor.userId || checkpoint.repo !== contents.repo.repo_name) return undefined;
  return checkpoint.bake;
}

function closureOf(contents: RepoContents, bakeName: string): Closure {
  assertValidName(bakeName, 'bake');
  if (!contents.bakes.has(bakeName)) throw new NotFoundError(`Bake '${bakeName}' not found`);
  const closure: Closure = { bakes: [], targets: [], prompts: [], edges: [] };
  const seen = new Set<string>();
  const queue: [string, string][] = [['bake', bakeName]];
  const visit = (from: [string, string], type: string, name: string) => {
    closure.edges.push([from[0], from[1], type, name]);
    queue.push([type, name]);
  };
  while (queue.length > 0) {
    const node = queue.shift()!;
    const [type, name] = node;
    if (seen.has(`${type}:${name}`)) continue;
    seen.add(`${type}:${name}`);
    if (type === 'bake') {
      const item = contents.bakes.get(name);
      if (!item) continue;
      closure.bakes.push(name);
      const config = item.config as BakeConfig;
      const parent = parentBakeOf(contents.actor.userId, contents.repo.repo_name, config);
      if (parent) visit(node, 'bake', parent);
      for (const target of new Set((config.datasets ?? []).map((dataset) => dataset.target))) visit(node, 'target', target);
    } else if (type === 'target') {
      const item = contents.targets.get(name);
      if (!item) continue;
      closure.targets.push(name);
      const config = item.config as TargetConfig;
      for (const prompt of new Set([config.teacher_prompt, config.student_prompt])) visit(node, 'prompt', prompt);
      const modelBake = modelBakeOf(contents, config);
      if (modelBake) visit(node, 'bake', modelBake);
    } else if (contents.prompts.has(name)) {
      closure.prompts.push(name);
    }
  }
  return closure;
}

interface PendingStep {
  id: string;
  action: Action;
  resource_type: RecreationPlanStep['resource_type'];
  resource_name: string;
  /** What the plan shows (bread-api.md §13.2). */
  dependencies: string[];
  /** Steps that must come first; wider than `dependencies` where the spec's list is terse. */
  after: string[];
  config: Record<string, unknown>;
  /** Tie-break among ready steps: prompts, targets, stim/rollout pairs, then bakes parent first. */
  rank: (string | number)[];
}

function planSteps(contents: RepoContents, closure: Closure): PendingStep[] {
  const steps: PendingStep[] = [];
  for (const name of closure.prompts) {
    const item = contents.prompts.get(name)!;
    const tools = item.tools ? { tools: item.tools } : {};
    steps.push({
      id: `create_prompt:${name}`,
      action: 'create_prompt',
      resource_type: 'prompt',
      resource_name: name,
      dependencies: [],
      after: [],
      config: { name, content: { messages: item.messages, ...tools }, messages: item.messages, ...tools },
      rank: [0, name],
    });
  }
  const planned = new Set(closure.targets);
  for (const name of closure.targets) {
    const item = contents.targets.get(name)!;
    const config = item.config as TargetConfig;
    const prompts = [...new Set([config.teacher_prompt, config.student_prompt])];
    const modelBake = modelBakeOf(contents, config);
    const modelDeps = modelBake ? [`bake:${modelBake}:complete`] : [];
    // A target template is a dependency only when the plan also recreates it: the step's config is
    // already resolved, so recreating the target never needs its template, and pulling the
    // template in would run its stim and rollout for nothing.
    const template = templateOf(item);
    const templates = template && template !== 'default' && planned.has(template) ? [template] : [];
    steps.push(
      {
        id: `create_target:${name}`,
        action: 'create_target',
        resource_type: 'target',
        resource_name: name,
        dependencies: [...prompts.map((prompt) => `prompt:${prompt}`), ...templates.map((t) => `target:${t}`), ...modelDeps],
        after: [
          ...prompts.map((prompt) => `create_prompt:${prompt}`),
          ...templates.map((t) => `create_target:${t}`),
          ...(modelBake ? [`run_bake:${modelBake}`] : []),
        ],
        config,
        rank: [1, name],
      },
      runStep('run_stim', name, [`create_target:${name}`], [2, name, 0]),
      runStep('run_rollout', name, [`run_stim:${name}`], [2, name, 1]),
    );
  }
  const depth = (name: string): number => {
    const parent = parentBakeOf(contents.actor.userId, contents.repo.repo_name, contents.bakes.get(name)!.config as BakeConfig);
    return parent && contents.bakes.has(parent) ? 1 + depth(parent) : 0;
  };
  for (const name of closure.bakes) {
    const config = contents.bakes.get(name)!.config as BakeConfig;
    const targets = [...new Set((config.datasets ?? []).map((dataset) => dataset.target))];
    const parent = parentBakeOf(contents.actor.userId, contents.repo.repo_name, config);
    const parents = parent && contents.bakes.has(parent) ? [parent] : [];
    steps.push(
      {
        id: `create_bake:${name}`,
        action: 'create_bake',
        resource_type: 'bake',
        resource_name: name,
        dependencies: [...targets.map((target) => `target:${target}`), ...parents.map((p) => `bake:${p}`)],
        after: [...targets.map((target) => `create_target:${target}`), ...parents.map((p) => `create_bake:${p}`)],
        config: withoutOutputDirs(config),
        rank: [3, depth(name), name, 0],
      },
      {
        id: `run_bake:${name}`,
        action: 'run_bake',
        resource_type: 'bake',
        resource_name: name,
        dependencies: [`bake:${name}`, ...targets.map((target) => `target:${target}:rollout_complete`), ...parents.map((p) => `bake:${p}:complete`)],
        after: [`create_bake:${name}`, ...targets.map((target) => `run_rollout:${target}`), ...parents.map((p) => `run_bake:${p}`)],
        config: {},
        rank: [3, depth(name), name, 1],
      },
    );
  }
  return steps;
}

function runStep(action: 'run_stim' | 'run_rollout', target: string, after: string[], rank: (string | number)[]): PendingStep {
  return {
    id: `${action}:${target}`,
    action,
    resource_type: 'target',
    resource_name: target,
    dependencies: [`target:${target}`],
    after,
    config: {},
    rank,
  };
}

/** Kahn's algorithm, choosing the lowest-ranked ready step each time, so the order is stable. */
function orderSteps(pending: PendingStep[]): RecreationPlanStep[] {
  const ids = new Set(pending.map((step) => step.id));
  const done = new Set<string>();
  const ordered: RecreationPlanStep[] = [];
  let remaining = pending;
  while (remaining.length > 0) {
    const ready = remaining.filter((step) => step.after.every((id) => done.has(id) || !ids.has(id)));
    // Lineage is acyclic by construction (a parent must exist before its child); guard anyway.
    const next = (ready.length > 0 ? ready : remaining).reduce((best, step) => (compareRank(step.rank, best.rank) < 0 ? step : best));
    done.add(next.id);
    remaining = remaining.filter((step) => step !== next);
    ordered.push({
      step: ordered.length + 1,
      action: next.action,
      resource_type: next.resource_type,
      resource_name: next.resource_name,
      dependencies: next.dependencies,
      config: next.config,
    });
  }
  return ordered;
}

function compareRank(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

function withoutOutputDirs(config: BakeConfig): BakeConfig {
  if (!config.checkpoint) return config;
  return {
    ...config,
    checkpoint: config.checkpoint.map((entry) => Object.fromEntries(Object.entries(entry).filter(([key]) => key !== 'output_dir'))),
  };
}

import { apiPath } from '../api.ts';
import { plural } from '../format.ts';
import { useLoad } from '../load.ts';
import type { DependencyGraph, RecreationPlan } from '../types.ts';
import { ErrorNote } from './ErrorNote.tsx';
import { JsonBlock } from './Json.tsx';

const ACTIONS: Record<string, string> = {
  create_prompt: 'Create prompt',
  create_target: 'Create target',
  run_stim: 'Run stim for',
  run_rollout: 'Run rollout for',
  create_bake: 'Create bake',
  run_bake: 'Run bake',
};

/** What a bake is made of (its dependency graph) and the steps that would make it again. */
export function Recipe({ repo, bake }: { repo: string; bake: string }) {
  const recipe = useLoad(
    async (api, signal) => {
      const base = apiPath('/v1/repo', repo, 'recipe', bake);
      const [graph, plan] = await Promise.all([
        api.get<DependencyGraph>(`${base}/dependency-graph`, { signal }),
        api.get<RecreationPlan>(`${base}/recreation-plan`, { signal }),
      ]);
      return { graph, plan };
    },
    [repo, bake],
  );
  if (recipe.error) return <ErrorNote error={recipe.error} />;
  if (!recipe.data) return <p class="muted">Loading the recipe…</p>;
  const { graph, plan } = recipe.data;
  const bySource = new Map<string, string[]>();
  for (const [sourceType, source, targetType, target] of graph.edges) {
    const key = `${sourceType} ${source}`;
    bySource.set(key, [...(bySource.get(key) ?? []), `${targetType} ${target}`]);
  }
  return (
    <div class="recipe">
      <h3>Dependencies</h3>
      <p>
        On base model <code>{graph.base_model}</code>: {plural(Object.keys(graph.bakes).length, 'bake')}, {plural(Object.keys(graph.targets).length, 'target')},{' '}
        {plural(Object.keys(graph.prompts).length, 'prompt')}.
      </p>
      <ul class="deps">
        {[...bySource].map(([source, needs]) => (
          <li key={source}>
            <strong>{source}</strong> needs {needs.join(', ')}
          </li>
        ))}
      </ul>
      <h3>Recreation plan</h3>
      <ol class="plan">
        {plan.steps.map((step) => (
          <li key={step.step}>
            {ACTIONS[step.action] ?? step.action} <code>{step.resource_name}</code>
            {step.dependencies.length ? <span class="muted"> · after {step.dependencies.join(', ')}</span> : null}
            {Object.keys(step.config).length ? <JsonBlock summary="configuration" value={step.config} /> : null}
          </li>
        ))}
      </ol>
    </div>
  );
}

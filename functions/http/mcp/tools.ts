import type { z } from 'zod';
import type { Actor } from '#core/actor.ts';
import type { TargetJobKind } from '#core/jobs/target-jobs.ts';
import type { Services } from '#core/services.ts';
import { BakeCreate, BakeDownloadQuery, OutputQuery, PromptCreate, RepoCreate, RepoListQuery, TargetCreate } from '#schemas/bread.ts';
import type { BakeDefinition, TargetDefinition } from '#schemas/bread.ts';
import { ChatCompletionRequest } from '#schemas/chat.ts';
import { BakePath, PromptPath, RepoPath, TargetPath } from '../openapi.ts';

/**
 * One MCP tool: a thin call into the same service the matching HTTP route calls, with the route's
 * own zod schemas (path names merged with the body or query) as its input schema.
 */
export interface McpTool<Input extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  input: Input;
  readOnly: boolean;
  run(actor: Actor, args: z.output<Input>): Promise<unknown>;
}

const tool = <Input extends z.ZodObject>(spec: McpTool<Input>): McpTool => spec as unknown as McpTool;

/** A chat through MCP answers as one message: the client reads a tool result, not a stream. */
const ChatInput = ChatCompletionRequest.omit({ stream: true, stream_options: true });

export interface McpToolDeps {
  services: Services;
  /** Sends one chat completion and waits for the whole reply, as `POST /v1/chat/completions` does without `stream`. */
  chat(actor: Actor, body: z.output<typeof ChatInput>): Promise<unknown>;
}

export function mcpTools({ services, chat }: McpToolDeps): McpTool[] {
  const { repos, prompts, targets, bakes, bakeJobs, targetJobs, recipes, pipelines } = services;
  const targetJobTools = (kind: TargetJobKind) => [
    tool({
      name: `run_${kind}`,
      description:
        `Start the target's ${kind} job (idempotent): a running or complete job is returned as it is, a failed one is replaced by a fresh attempt. ` +
        `Returns at once; follow it with get_${kind}.`,
      input: TargetPath,
      readOnly: false,
      run: (actor, { repo_name, target_name }) => targetJobs.start(actor, repo_name, target_name, kind),
    }),
    tool({
      name: `get_${kind}`,
      description: `The target's ${kind} job status (not_started, running, complete, failed) with its progress.`,
      input: TargetPath,
      readOnly: true,
      run: (actor, { repo_name, target_name }) => targetJobs.status(actor, repo_name, target_name, kind),
    }),
    tool({
      name: `get_${kind}_output`,
      description: `A page of the target's ${kind} output lines (offset, limit up to 1000).`,
      input: TargetPath.extend(OutputQuery.shape),
      readOnly: true,
      run: (actor, { repo_name, target_name, offset, limit }) => targetJobs.output(actor, repo_name, target_name, kind, offset, limit),
    }),
  ];

  return [
    tool({
      name: 'list_repos',
      description: 'A page of your repos with their base models, ascending by name.',
      input: RepoListQuery.pick({ offset: true, limit: true }),
      readOnly: true,
      run: (actor, { offset, limit }) => repos.listPage(actor, offset ?? 0, limit),
    }),
    tool({
      name: 'get_repo',
      description: 'One repo with its base model.',
      input: RepoPath,
      readOnly: true,
      run: (actor, { repo_name }) => repos.get(actor, repo_name),
    }),
    tool({
      name: 'create_repo',
      description: 'Create a repo on a base model; an existing repo with the same base model is returned as it is.',
      input: RepoCreate,
      readOnly: false,
      run: async (actor, input) => (await repos.create(actor, input)).repo,
    }),
    tool({
      name: 'get_repo_tree',
      description: "The lineage of every bake in the repo: status, checkpoints and parent edges.",
      input: RepoPath,
      readOnly: true,
      run: (actor, { repo_name }) => recipes.tree(actor, repo_name),
    }),
    tool({
      name: 'list_prompts',
      description: "The repo's prompt names, ascending.",
      input: RepoPath,
      readOnly: true,
      run: async (actor, { repo_name }) => ({ prompts: await prompts.list(actor, repo_name) }),
    }),
    tool({
      name: 'get_prompt',
      description: 'One prompt with its messages and tools.',
      input: PromptPath,
      readOnly: true,
      run: (actor, { repo_name, prompt_name }) => prompts.get(actor, repo_name, prompt_name),
    }),
    tool({
      name: 'create_prompt',
      description: 'Create a prompt (immutable): the same content again is returned as it is, different content is refused.',
      input: PromptCreate.extend(RepoPath.shape),
      readOnly: false,
      run: async (actor, { repo_name, prompt_name, ...content }) => (await prompts.create(actor, repo_name, prompt_name, content)).prompt,
    }),
    tool({
      name: 'list_targets',
      description: "The repo's target names, ascending.",
      input: RepoPath,
      readOnly: true,
      run: async (actor, { repo_name }) => ({ targets: await targets.list(actor, repo_name) }),
    }),
    tool({
      name: 'get_target',
      description: 'One target with its resolved config.',
      input: TargetPath,
      readOnly: true,
      run: (actor, { repo_name, target_name }) => targets.get(actor, repo_name, target_name),
    }),
    tool({
      name: 'create_target',
      description: 'Create a target (immutable): `template` is `default` or an existing target, deep-merged with `overrides`.',
      input: TargetCreate.extend(RepoPath.shape),
      readOnly: false,
      run: async (actor, { repo_name, target_name, ...definition }) =>
        (await targets.create(actor, repo_name, target_name, definition as TargetDefinition)).target,
    }),
    ...targetJobTools('stim'),
    ...targetJobTools('rollout'),
    tool({
      name: 'list_bakes',
      description: "The repo's bake names, ascending.",
      input: RepoPath,
      readOnly: true,
      run: async (actor, { repo_name }) => ({ bakes: await bakes.list(actor, repo_name) }),
    }),
    tool({
      name: 'get_bake',
      description: 'One bake: its config, job status, progress, loss summary and checkpoints (model names).',
      input: BakePath,
      readOnly: true,
      run: (actor, { repo_name, bake_name }) => bakeJobs.get(actor, repo_name, bake_name),
    }),
    tool({
      name: 'create_bake',
      description: 'Create a bake (immutable): `template` is `default` or an existing bake, deep-merged with `overrides`.',
      input: BakeCreate.extend(RepoPath.shape),
      readOnly: false,
      run: async (actor, { repo_name, bake_name, ...definition }) => {
        const { item } = await bakes.create(actor, repo_name, bake_name, definition as BakeDefinition);
        return bakeJobs.viewItem(actor, repo_name, item);
      },
    }),
    tool({
      name: 'run_bake',
      description: "Start the bake's training job (idempotent). Its targets' rollouts must be complete. Returns at once; follow it with get_bake.",
      input: BakePath,
      readOnly: false,
      run: (actor, { repo_name, bake_name }) => bakeJobs.start(actor, repo_name, bake_name),
    }),
    tool({
      name: 'get_bake_metrics',
      description: 'The bake\'s training log: one row per logged iteration (iter, loss, lr, …); [] before any.',
      input: BakePath,
      readOnly: true,
      run: async (actor, { repo_name, bake_name }) => ({ metrics: await bakeJobs.metrics(actor, repo_name, bake_name) }),
    }),
    tool({
      name: 'get_recipe',
      description: "Everything the bake depends on (bakes, targets, prompts and their edges) and the ordered steps that rebuild it.",
      input: BakePath,
      readOnly: true,
      run: async (actor, { repo_name, bake_name }) => ({
        dependency_graph: await recipes.dependencyGraph(actor, repo_name, bake_name),
        recreation_plan: await recipes.recreationPlan(actor, repo_name, bake_name),
      }),
    }),
    tool({
      name: 'run_pipeline',
      description:
        "Run every missing job of the bake's recreation plan in dependency order (stim, rollout, parent bakes, the bake); complete jobs are skipped. " +
        'Returns at once; follow it with get_pipeline.',
      input: BakePath,
      readOnly: false,
      run: (actor, { repo_name, bake_name }) => pipelines.run(actor, repo_name, bake_name),
    }),
    tool({
      name: 'get_pipeline',
      description: "The bake's pipeline as it stands: its steps and their status.",
      input: BakePath,
      readOnly: true,
      run: (actor, { repo_name, bake_name }) => pipelines.get(actor, repo_name, bake_name),
    }),
    tool({
      name: 'get_download_url',
      description: "A time-limited URL for a checkpoint's weights archive (the newest checkpoint unless one is named).",
      input: BakePath.extend(BakeDownloadQuery.shape),
      readOnly: true,
      run: (actor, { repo_name, bake_name, checkpoint, expires_in }) => bakeJobs.download(actor, repo_name, bake_name, checkpoint, expires_in),
    }),
    tool({
      name: 'chat',
      description:
        'One chat completion (OpenAI format, not streamed) from a base model or a baked checkpoint: `model` is a base model, ' +
        '`user/repo/bake/step`, or `repo/bake` for the newest checkpoint.',
      input: ChatInput,
      readOnly: false,
      run: (actor, body) => chat(actor, body),
    }),
  ];
}

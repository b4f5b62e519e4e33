/**
 * The bake workflow driven through the public API with the official client (@aibread/sdk), as a
 * user's script would: prompts, a target, stim → rollout → bake, then replies sampled from any
 * model with or without a system prompt. The demo and the end-to-end test share it.
 */
import type Bread from '@aibread/sdk';

export type Client = Bread;
type Job = { status: string; progress_percent?: number | null; error?: string | null; lines?: number | null };

const POLL_MS = 250;

/** Polls a job's status until it ends, reporting progress; throws with the job's error on failure. */
export async function waitForJob(read: () => Promise<Job>, onProgress: (percent: number, job: Job) => void = () => {}): Promise<Job> {
  for (;;) {
    const job = await read();
    onProgress(job.progress_percent ?? 0, job);
    if (job.status === 'complete') return job;
    if (job.status === 'failed') throw new Error(`job failed: ${job.error ?? 'no reason given'}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function runStim(client: Client, repo: string, target: string, onProgress?: (percent: number, job: Job) => void): Promise<Job> {
  await client.targets.stim.run(target, { repo_name: repo });
  return waitForJob(() => client.targets.stim.get(target, { repo_name: repo }), onProgress);
}

export async function runRollout(client: Client, repo: string, target: string, onProgress?: (percent: number, job: Job) => void): Promise<Job> {
  await client.targets.rollout.run(target, { repo_name: repo });
  return waitForJob(() => client.targets.rollout.get(target, { repo_name: repo }), onProgress);
}

export async function runBake(client: Client, repo: string, bake: string, onProgress?: (percent: number, job: Job) => void) {
  await client.bakes.run(bake, { repo_name: repo });
  await waitForJob(() => client.bakes.get(bake, { repo_name: repo }), onProgress);
  return client.bakes.get(bake, { repo_name: repo });
}

/** Every output line of a finished stim or rollout, page by page. */
export async function allOutput(client: Client, repo: string, target: string, kind: 'stim' | 'rollout'): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (;;) {
    const page =
      kind === 'stim'
        ? await client.targets.stim.getOutput(target, { repo_name: repo, offset: lines.length, limit: 1000 })
        : await client.targets.rollout.getOutput(target, { repo_name: repo, offset: lines.length, limit: 1000 });
    lines.push(...(page.output as Record<string, unknown>[]));
    if (!page.has_more) return lines;
  }
}

export interface SampleRequest {
  repo: string;
  /** Names the prompt and target made for this sample. */
  name: string;
  model: string;
  systemPrompt: string | null;
  questions: string[];
  maxTokens?: number;
}

/**
 * Replies of `model` to the questions under an optional system prompt, greedy, by way of a
 * rollout (the teacher side of a target is exactly "this model with this prompt").
 */
export async function sampleReplies(client: Client, request: SampleRequest): Promise<{ question: string; reply: string }[]> {
  const { repo, name } = request;
  const messages = request.systemPrompt === null ? [] : [{ role: 'system', content: request.systemPrompt }];
  await client.prompts.create(repo, { prompt_name: name, messages });
  await client.prompts.create(repo, { prompt_name: `${name}_student`, messages: [] });
  await client.targets.create(repo, {
    target_name: name,
    template: 'default',
    overrides: {
      teacher_prompt: name,
      student_prompt: `${name}_student`,
      model_name: request.model,
      generators: [{ type: 'hardcoded', questions: request.questions }],
      temperature: 0,
      max_tokens: request.maxTokens ?? 96,
    },
  });
  await runStim(client, repo, name);
  await runRollout(client, repo, name);
  const lines = (await allOutput(client, repo, name, 'rollout')) as { stimulus_id: number; response: string }[];
  return lines
    .sort((a, b) => a.stimulus_id - b.stimulus_id)
    .map((line) => ({ question: request.questions[line.stimulus_id]!, reply: line.response }));
}

/** The parts of the public API's answers the console reads (bread-api.md, loops-api.md). */

export type JobStatus = 'not_started' | 'running' | 'complete' | 'failed';

export interface RepoSummary {
  repo_name: string;
  base_model: string;
}

export interface Message {
  role: string;
  content?: unknown;
}

export interface Prompt {
  prompt_name: string;
  messages: Message[];
  tools?: unknown[] | null;
}

export interface JobState {
  status: JobStatus;
  lines: number | null;
  config: Record<string, unknown> | null;
  error: string | null;
  job_id: number | null;
  progress_percent: number | null;
  total_expected?: number | null;
}

export interface OutputPage<Line> extends JobState {
  output: Line[];
  offset: number;
  limit: number;
  has_more: boolean;
}

export interface Stimulus {
  messages: Message[];
}

export interface OutputLine {
  stimulus_id?: number;
  trajectory_id?: number;
  unconditioned_stimulus?: Stimulus;
  conditioned_stimulus?: Stimulus;
  response?: string;
}

export interface Target {
  target_name: string;
  config: Record<string, unknown> & { teacher_prompt?: string; student_prompt?: string; model_name?: string };
  /** "default" or the target it was made from; absent for targets made before it was recorded. */
  template?: string;
}

export interface Bake extends JobState {
  bake_name?: string;
  /** "default" or the bake it was made from; absent for bakes made before it was recorded. */
  template?: string;
  model_name?: string[] | null;
  loss?: { latest_loss: number; final_loss?: number | null; min_loss: number; max_loss: number } | null;
}

export interface MetricsRow {
  iter: number;
  loss: number;
  lr?: number;
  epoch?: number;
}

export interface TreeNode {
  status: 'complete' | 'failed' | 'running' | 'pending' | 'unknown';
  config: Record<string, unknown>;
  model_name?: string[];
  checkpoints?: number[];
}

export interface RepoTree {
  base_model: string;
  bakes: Record<string, TreeNode>;
  edges: [string, string, string, string][];
}

export interface DependencyGraph {
  base_model: string;
  bakes: Record<string, unknown>;
  targets: Record<string, unknown>;
  prompts: Record<string, string | null>;
  edges: [string, string, string, string][];
}

export interface RecreationStep {
  step: number;
  action: string;
  resource_type: string;
  resource_name: string;
  dependencies: string[];
  config: Record<string, unknown>;
}

export interface RecreationPlan {
  base_model: string;
  total_steps: number;
  steps: RecreationStep[];
}

export interface Pipeline {
  status: 'running' | 'complete' | 'failed';
  steps: { kind: string; name: string; status: string; job_id: number | null; error: string | null }[];
  error: string | null;
}

export interface Download {
  url: string;
  expires_in: number;
  checkpoint: number;
  bake_name: string;
}

export interface Model {
  id: string;
  owned_by: string;
}

export interface LoopsRun {
  id: string;
  name: string;
  base_model: string;
  created_at: string;
  status: { name: string };
}

/** A row of `GET /v1/loops/runs/{run_id}/metrics`: one optimizer step. */
export interface RunStepMetric {
  step: number;
  loss: number | null;
  learning_rate: number;
  grad_norm: number;
  tokens: number;
  time: string;
}

export interface CheckpointFile {
  url: string;
  relative_file_name: string;
  size_bytes: number;
}

export interface LoopsCheckpoint {
  id: string;
  checkpoint_id: string;
  target: string;
  created_at: string;
  size_bytes: number;
}

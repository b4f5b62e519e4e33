/**
 * The engine side of the trainer relay, for API tests: it speaks the trainer relay routes
 * (functions/schemas/trainer.ts) through the in-process app with the token from the trainer's job
 * spec, so runs and their operations can be driven without a model.
 */
import { expect, vi } from 'vitest';
import type { HeldOperation, TrainerOperationResult } from '#schemas/trainer.ts';
import type { TestApp } from './app.ts';

type TrainerSpec = Extract<import('#schemas/job-spec.ts').JobSpec, { kind: 'trainer' }>;

export interface RelayAnswer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export const LORA_CONFIG = { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] };

export class FakeTrainer {
  constructor(
    private readonly app: Pick<TestApp['app'], 'request'>,
    readonly spec: TrainerSpec,
    private readonly token = spec.trainer.relay_token,
  ) {}

  /** The trainer jobs the app has started, oldest first, once there are `count`. */
  static async all(api: TestApp, count = 1): Promise<TrainerSpec[]> {
    return vi.waitFor(() => {
      const trainers = api.jobs.compute.submitted.filter((job) => job.kind === 'trainer');
      if (trainers.length < count) throw new Error(`${trainers.length} trainer(s) started, waiting for ${count}`);
      return trainers.map((job) => job.spec as TrainerSpec);
    });
  }

  /** The run's newest trainer job, once it has `count` of them. */
  static async forRun(api: TestApp, runId: string, count = 1): Promise<FakeTrainer> {
    const specs = await vi.waitFor(() => {
      const trainers = api.jobs.compute.submitted.map((job) => job.spec).filter((spec): spec is TrainerSpec => spec.kind === 'trainer' && spec.trainer.run_id === runId);
      if (trainers.length < count) throw new Error(`${trainers.length} trainer(s) started for run ${runId}, waiting for ${count}`);
      return trainers;
    });
    return new FakeTrainer(api.app, specs.at(-1)!);
  }

  /** The run's trainer job, having said ready. */
  static async readyForRun(api: TestApp, runId: string): Promise<FakeTrainer> {
    const trainer = await FakeTrainer.forRun(api, runId);
    expect((await trainer.ready()).status).toBe(200);
    return trainer;
  }

  /** The trainer job the app started most recently, once there are `count`. */
  static async started(api: TestApp, count = 1): Promise<FakeTrainer> {
    return new FakeTrainer(api.app, (await FakeTrainer.all(api, count)).at(-1)!);
  }

  get jobId(): number {
    return this.spec.job_id;
  }

  /** The same trainer speaking to another app (another server over the same Store). */
  through(app: Pick<TestApp['app'], 'request'>): FakeTrainer {
    return new FakeTrainer(app, this.spec, this.token);
  }

  withToken(token: string): FakeTrainer {
    return new FakeTrainer(this.app, this.spec, token);
  }

  ready(step = 0): Promise<RelayAnswer> {
    return this.call(`/v1/relay/trainers/${this.jobId}/ready`, { step, lora_config: LORA_CONFIG });
  }

  next(wait_s = 0): Promise<RelayAnswer> {
    return this.call(`/v1/relay/trainers/${this.jobId}/next`, { wait_s });
  }

  post(operationId: string, result: TrainerOperationResult): Promise<RelayAnswer> {
    return this.call(`/v1/relay/trainers/${this.jobId}/operations/${encodeURIComponent(operationId)}/result`, result);
  }

  /** Waits for the next operation and returns it. */
  async take(): Promise<HeldOperation> {
    return vi.waitFor(async () => {
      const { status, body } = await this.next(0);
      if (status !== 200 || !body.operation) throw new Error(`no operation yet (${status})`);
      return body.operation as HeldOperation;
    });
  }

  /** Answers a save the way the engine does: the adapter files written under its URI, then the result. */
  async answerSave(operation: HeldOperation, step = 3): Promise<RelayAnswer> {
    if (operation.operation.kind !== 'save') throw new Error(`operation ${operation.id} is a ${operation.operation.kind}, not a save`);
    return this.post(operation.id, {
      status: 'done',
      result: {
        step,
        policy_version: operation.operation.publish ? step : 0,
        files: [
          { name: 'adapter_config.json', size_bytes: 20 },
          { name: 'adapter_model.safetensors', size_bytes: 1000 },
        ],
        lora_config: LORA_CONFIG,
      },
    });
  }

  private async call(path: string, body: unknown): Promise<RelayAnswer> {
    const response = await this.app.request(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }
}

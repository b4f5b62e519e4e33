/**
 * A fake AWS Batch for tests: the three REST-JSON operations BatchCompute uses
 * (`POST /v1/submitjob`, `/v1/describejobs`, `/v1/terminatejob`), on a loopback HTTP server the
 * real `BatchClient` talks to. AWS Batch has no emulator (DESIGN.md §3).
 *
 * Jobs move SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING → SUCCEEDED | FAILED on their
 * own when a `plan` says how each should end; without one they stay where `setStatus` puts them.
 * Each change after submission is published as an EventBridge "Batch Job State Change" event
 * (Batch sends none for the submission itself), shaped like AWS's documented example.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatchClient, type JobStatus } from '@aws-sdk/client-batch';

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';

export interface FakeBatchPlan {
  exitCode: number;
  /** Time spent RUNNING before the job ends. */
  runMs: number;
  /** The container's own reason, e.g. `OutOfMemoryError: Container killed due to memory usage`. */
  containerReason?: string;
}

export interface SubmitJobBody {
  jobName?: string;
  jobQueue?: string;
  jobDefinition?: string;
  containerOverrides?: { command?: string[] };
  tags?: Record<string, string>;
  propagateTags?: boolean;
}

export interface FakeJob {
  jobArn: string;
  jobId: string;
  jobName: string;
  jobQueue: string;
  jobDefinition: string;
  status: JobStatus;
  statusReason?: string;
  createdAt: number;
  startedAt?: number;
  stoppedAt?: number;
  container: { image: string; command: string[]; exitCode?: number; reason?: string; logStreamName?: string };
  attempts: unknown[];
  tags?: Record<string, string>;
  propagateTags?: boolean;
  [field: string]: unknown;
}

export interface FakeBatchOptions {
  /** Queues that exist (by name or ARN); submitting to another is a ClientException. */
  queues: string[];
  plan?: (request: SubmitJobBody) => FakeBatchPlan | undefined;
  /** Time between the automatic steps before RUNNING; default 5 ms. */
  stepMs?: number;
}

export type BatchEvent = Record<string, unknown> & { detail: FakeJob };

const STEPS: JobStatus[] = ['PENDING', 'RUNNABLE', 'STARTING', 'RUNNING'];

export class FakeBatch {
  readonly requests: { operation: string; body: Record<string, unknown> }[] = [];
  readonly jobs = new Map<string, FakeJob>();
  readonly events: BatchEvent[] = [];
  private readonly listeners: ((event: BatchEvent) => void)[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private throttled: { operation?: string; remaining: number } = { remaining: 0 };
  private readonly clients: BatchClient[] = [];

  private readonly server: Server;
  endpoint = '';

  private constructor(private readonly options: FakeBatchOptions) {
    this.server = createServer((request, response) => void this.handle(request, response));
  }

  static async start(options: FakeBatchOptions): Promise<FakeBatch> {
    const fake = new FakeBatch(options);
    await new Promise<void>((ready) => fake.server.listen(0, '127.0.0.1', ready));
    fake.endpoint = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  client(config: { maxAttempts?: number } = {}): BatchClient {
    const client = new BatchClient({
      endpoint: this.endpoint,
      region: REGION,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      ...config,
    });
    this.clients.push(client);
    return client;
  }

  onEvent(listener: (event: BatchEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Answers the next `times` requests (of one operation, or any) with a 429 ThrottlingException. */
  throttle(times: number, operation?: string): void {
    this.throttled = { operation, remaining: times };
  }

  /** Moves a job to a status by hand, publishing the event. */
  setStatus(jobId: string, status: JobStatus, patch: Partial<FakeJob> = {}): void {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`fake Batch has no job ${jobId}`);
    Object.assign(job, patch, { status });
    this.publish(job);
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    for (const client of this.clients) client.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const operation = (request.url ?? '').split('?')[0]!.replace(/^\/v1\//, '');
    let body: Record<string, unknown>;
    try {
      body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : {};
    } catch {
      return this.error(response, 400, 'ClientException', 'Request body is not JSON');
    }
    this.requests.push({ operation, body });

    if (this.throttled.remaining > 0 && (!this.throttled.operation || this.throttled.operation === operation)) {
      this.throttled.remaining--;
      return this.error(response, 429, 'ThrottlingException', 'Rate exceeded');
    }
    if (request.method !== 'POST') return this.error(response, 404, 'ClientException', `No route ${request.method} ${request.url}`);
    switch (operation) {
      case 'submitjob':
        return this.submit(body as SubmitJobBody, response);
      case 'describejobs': {
        const ids = Array.isArray(body.jobs) ? (body.jobs as string[]) : [];
        if (ids.length === 0 || ids.length > 100) return this.error(response, 400, 'ClientException', 'jobs must hold 1 to 100 ids');
        const jobs = ids.map((id) => this.jobs.get(id)).filter((job): job is FakeJob => job !== undefined);
        return this.json(response, { jobs });
      }
      case 'terminatejob':
        return this.terminate(body, response);
      default:
        return this.error(response, 404, 'ClientException', `fake Batch does not implement ${operation}`);
    }
  }

  private submit(body: SubmitJobBody, response: ServerResponse): void {
    const { jobName, jobQueue, jobDefinition } = body;
    if (!jobName || !jobQueue || !jobDefinition) {
      return this.error(response, 400, 'ClientException', 'jobName, jobQueue and jobDefinition are required');
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(jobName)) return this.error(response, 400, 'ClientException', `Invalid jobName ${jobName}`);
    if (!this.options.queues.includes(jobQueue)) return this.error(response, 400, 'ClientException', `JobQueue ${jobQueue} not found.`);

    const jobId = randomUUID();
    const jobArn = `arn:aws:batch:${REGION}:${ACCOUNT}:job/${jobId}`;
    const job: FakeJob = {
      jobArn,
      jobId,
      jobName,
      jobQueue: `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${jobQueue}`,
      jobDefinition: `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${jobDefinition}:1`,
      status: 'SUBMITTED',
      createdAt: Date.now(),
      container: { image: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/bakehouse-engine:latest`, command: body.containerOverrides?.command ?? [] },
      attempts: [],
      dependsOn: [],
      parameters: {},
      retryStrategy: { attempts: 1, evaluateOnExit: [] },
      platformCapabilities: ['EC2'],
      eksAttempts: [],
      ...(body.tags ? { tags: body.tags } : {}),
      propagateTags: body.propagateTags ?? false,
    };
    this.jobs.set(jobId, job);
    this.json(response, { jobArn, jobName, jobId });

    const plan = this.options.plan?.(body);
    if (plan) this.advance(job, plan, 0);
  }

  private advance(job: FakeJob, plan: FakeBatchPlan, step: number): void {
    const stepMs = this.options.stepMs ?? 5;
    const next = STEPS[step];
    this.later(next ? stepMs : plan.runMs, () => {
      if (job.status === 'SUCCEEDED' || job.status === 'FAILED') return; // terminated meanwhile
      if (next) {
        if (next === 'RUNNING') job.startedAt = Date.now();
        this.setStatus(job.jobId, next);
        this.advance(job, plan, step + 1);
        return;
      }
      this.finish(job, plan.exitCode, 'Essential container in task exited', plan.containerReason);
    });
  }

  private finish(job: FakeJob, exitCode: number | undefined, statusReason: string, containerReason?: string): void {
    const stoppedAt = Date.now();
    const container = { ...job.container, exitCode, ...(containerReason ? { reason: containerReason } : {}), logStreamName: `bakehouse/default/${job.jobId}` };
    const attempt = { container: { exitCode, ...(containerReason ? { reason: containerReason } : {}) }, startedAt: job.startedAt, stoppedAt, statusReason };
    this.setStatus(job.jobId, exitCode === 0 ? 'SUCCEEDED' : 'FAILED', {
      statusReason,
      stoppedAt,
      container,
      attempts: job.startedAt ? [attempt] : [],
    });
  }

  private terminate(body: Record<string, unknown>, response: ServerResponse): void {
    const jobId = typeof body.jobId === 'string' ? body.jobId : '';
    const reason = typeof body.reason === 'string' ? body.reason : '';
    if (!jobId || !reason) return this.error(response, 400, 'ClientException', 'jobId and reason are required');
    const job = this.jobs.get(jobId);
    if (!job) return this.error(response, 400, 'ClientException', `Job ${jobId} not found`);
    this.json(response, {});
    if (job.status === 'SUCCEEDED' || job.status === 'FAILED') return;
    // A running container is stopped (SIGTERM, then SIGKILL): exit code 143 if it obeys.
    this.later(1, () => this.finish(job, job.status === 'RUNNING' ? 143 : undefined, reason));
  }

  private publish(job: FakeJob): void {
    const event: BatchEvent = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Batch Job State Change',
      source: 'aws.batch',
      account: ACCOUNT,
      time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      region: REGION,
      resources: [job.jobArn],
      detail: structuredClone(job),
    };
    this.events.push(event);
    for (const listener of this.listeners) listener(event);
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private json(response: ServerResponse, body: unknown): void {
    response.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': randomUUID() });
    response.end(JSON.stringify(body));
  }

  private error(response: ServerResponse, status: number, type: string, message: string): void {
    response.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type, 'x-amzn-requestid': randomUUID() });
    response.end(JSON.stringify({ message }));
  }
}

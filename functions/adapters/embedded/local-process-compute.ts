/**
 * LocalProcessCompute: the Compute port as engine processes on this machine, for the embedded
 * runtime. Jobs wait in a FIFO queue until one of `concurrency` slots is free; samplers start at
 * once and take no slot (they serve requests until idle rather than finish, so a slot held for
 * their whole life would stall every bake behind a chat).
 *
 * Each engine runs detached, in its own process group, under a small `sh` wrapper that writes the
 * engine's exit code to `<stateDir>/<externalId>.exit` — so engines outlive a server restart, and
 * a job that finished while the server was down is still known. Per job the state dir holds:
 *
 *   <id>.json        {externalId, jobId, kind, specUri, submittedAt, pid?, startedAt?, reportedAt?}
 *   <id>.exit        the exit code, written by the wrapper when the engine ends
 *   <id>.stderr      the engine's stderr (its tail is the operators' failure reason); <id>.stdout likewise
 *   <id>.terminated  the reason given to `terminate`
 *
 * A job's record is written before it waits for a slot, so the queue survives a stop or a crash:
 * a record without a pid is a job still waiting. `describe` works from these files alone.
 * `resume()` queues the waiting jobs again in the order they were submitted, re-attaches to
 * engines a previous server left running, and reports jobs that ended unreported; `close()` stops
 * watching, killing nothing.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { closeSync, existsSync, openSync } from 'node:fs';
import { access, constants, mkdir, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Compute, ComputeEvent, ComputeJob, ComputeStatus } from '#ports/compute.ts';
import type { JobKind } from '#schemas/job-spec.ts';

export interface LocalProcessComputeOptions {
  /** Where the per-job files live; created when missing. Keep it across restarts. */
  stateDir: string;
  /** The engine's command line; `run <specUri>` is appended. */
  engineCommand: string[];
  /** Engines running at once, samplers not counted. */
  concurrency: number;
  /** Receives `running` on spawn and `succeeded`/`failed` on exit, in order. */
  onEvent: (event: ComputeEvent) => Promise<void>;
  /** Variables set for the engine, over this process's environment. */
  env?: Record<string, string | undefined>;
  /** How often engines from a previous server are checked; default 1 s. */
  pollIntervalMs?: number;
  /** After `terminate`'s SIGTERM, how long before SIGKILL; default 10 s. */
  terminateGraceMs?: number;
  /** Lines of stderr kept as a failure reason; default 20. */
  stderrTailLines?: number;
  /** Structured log lines; default one JSON line on stderr. */
  log?: (entry: Record<string, unknown>) => void;
}

interface JobRecord {
  externalId: string;
  jobId: number;
  kind: JobKind;
  specUri: string;
  submittedAt: string;
  /** The wrapper's pid, which is also the engine's process group id. */
  pid?: number;
  startedAt?: string;
  /** When the final event was delivered; unset jobs are reported again by `resume()`. */
  reportedAt?: string;
}

interface Queued {
  record: JobRecord;
}

/** An engine being watched: our own child (exit event), or one from a previous server (polled). */
interface Watched {
  record: JobRecord;
  /** The record with its pid, being written; the final report waits for it. */
  written?: Promise<void>;
  finishing?: boolean;
  timer?: NodeJS.Timeout;
  detach?: () => void;
}

const ID_PATTERN = /^[a-z]+-\d+-[0-9a-f]{8}$/;
/** Long-running kinds, outside the concurrency limit (see the module doc). */
const TAKES_NO_SLOT: ReadonlySet<JobKind> = new Set(['sampler']);
const ENGINE_MODULE_MISSING = /No module named '?bakehouse_engine/;
/** Whether /proc shows processes' command lines (Linux); elsewhere a pid check has to do. */
const HAS_PROC = existsSync('/proc/self/cmdline');

/**
 * Runs the engine, then records its exit code atomically. The trap keeps the wrapper alive through
 * the SIGTERM that `terminate` sends the whole group, so the code is still written; the engine
 * itself gets default signal handling (a trapped signal is reset in the child).
 */
const WRAPPER = [
  'exit_file=$1; shift',
  "trap ':' TERM INT HUP",
  '"$@"',
  'code=$?',
  'printf \'%s\\n\' "$code" > "$exit_file.tmp" && mv -f "$exit_file.tmp" "$exit_file"',
  'exit "$code"',
].join('\n');

export function missingEngineSentence(executable: string): string {
  return (
    `The engine environment is missing: ${executable} was not found or is not executable. ` +
    'Create it with `npm run setup` (it builds batch/engine/.venv), then retry the job.'
  );
}

const jsonLog = (entry: Record<string, unknown>) => console.error(JSON.stringify(entry));

export class LocalProcessCompute implements Compute {
  readonly stateDir: string;
  private readonly engineCommand: string[];
  private readonly concurrency: number;
  private readonly onEvent: (event: ComputeEvent) => Promise<void>;
  private readonly env: NodeJS.ProcessEnv;
  private readonly pollIntervalMs: number;
  private readonly terminateGraceMs: number;
  private readonly stderrTailLines: number;
  private readonly log: (entry: Record<string, unknown>) => void;

  private readonly queue: Queued[] = [];
  /** Taken from the queue, not yet spawned. */
  private readonly starting = new Map<string, JobRecord>();
  private readonly watched = new Map<string, Watched>();
  /** Events go out one at a time, in the order they happened. */
  private events: Promise<void> = Promise.resolve();
  private ready: Promise<void>;
  private closed = false;

  constructor(options: LocalProcessComputeOptions) {
    if (options.engineCommand.length === 0) throw new Error('LocalProcessCompute needs an engine command');
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new RangeError('concurrency must be a positive integer');
    this.stateDir = resolve(options.stateDir);
    this.engineCommand = options.engineCommand;
    this.concurrency = options.concurrency;
    this.onEvent = options.onEvent;
    this.env = Object.fromEntries(
      Object.entries({ ...process.env, ...options.env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.terminateGraceMs = options.terminateGraceMs ?? 10_000;
    this.stderrTailLines = options.stderrTailLines ?? 20;
    this.log = options.log ?? jsonLog;
    this.ready = mkdir(this.stateDir, { recursive: true }).then(() => undefined);
  }

  async submit(job: ComputeJob): Promise<string> {
    if (this.closed) throw new Error('LocalProcessCompute is closed');
    if (!Number.isSafeInteger(job.jobId) || job.jobId <= 0) throw new TypeError(`Invalid job id ${job.jobId}`);
    if (!/^[a-z]+$/.test(job.kind)) throw new TypeError(`Invalid job kind ${String(job.kind)}`);
    await this.ready;
    // A job submitted again because the id of its first submission was lost (a crash before the
    // caller recorded it; the reconciler then submits it anew) must not run twice.
    const submitted = this.activeFor(job.jobId);
    if (submitted) return submitted;
    const externalId = `${job.kind}-${job.jobId}-${randomBytes(4).toString('hex')}`;
    const record: JobRecord = { externalId, jobId: job.jobId, kind: job.kind, specUri: job.specUri, submittedAt: new Date().toISOString() };
    await this.writeRecord(record);
    this.queue.push({ record });
    this.pump();
    return externalId;
  }

  /** This adapter's compute job for a job id, while it waits, starts or runs. */
  private activeFor(jobId: number): string | undefined {
    const records = [...this.queue.map((queued) => queued.record), ...this.starting.values(), ...[...this.watched.values()].map((watched) => watched.record)];
    return records.find((record) => record.jobId === jobId)?.externalId;
  }

  private usedSlots(): number {
    const records = [...this.watched.values()].map((watched) => watched.record.kind);
    return records.filter((kind) => !TAKES_NO_SLOT.has(kind)).length + this.starting.size;
  }

  async describe(externalId: string): Promise<ComputeStatus> {
    if (!ID_PATTERN.test(externalId)) return { state: 'gone', reason: `${externalId} is not a local compute job id` };
    if (this.queue.some((queued) => queued.record.externalId === externalId) || this.starting.has(externalId)) {
      return { state: 'pending' };
    }
    const record = await this.recordOf(externalId);
    if (!record) return { state: 'gone', reason: `No local compute job ${externalId} is recorded in ${this.stateDir}` };

    // Liveness first: a wrapper writes the exit file before it exits, so a dead one has written it.
    const alive = record.pid !== undefined && (await this.isAlive(record));
    const final = await this.finalStatus(record);
    if (final) return final;
    if (alive) return { state: 'running' };
    const terminated = await this.terminatedStatus(externalId);
    if (terminated !== undefined) return terminated;
    if (record.pid === undefined) {
      // Waiting for a slot, across restarts too (resume), unless the server stopped mid-spawn.
      if (!(await this.spawnBegun(externalId))) return { state: 'pending' };
      return {
        state: 'gone',
        reason: 'The local server stopped while starting the engine, before recording its pid; whether it ran is unknown',
        failure: { cause: 'vanished' },
      };
    }
    return {
      state: 'gone',
      reason: `The engine process (pid ${record.pid}) is gone without recording an exit code; it was killed or the machine restarted`,
      failure: { cause: 'vanished' },
    };
  }

  async terminate(externalId: string, reason: string): Promise<void> {
    if (!ID_PATTERN.test(externalId)) return;
    const index = this.queue.findIndex((queued) => queued.record.externalId === externalId);
    if (index >= 0) {
      const [{ record }] = this.queue.splice(index, 1) as [Queued];
      await writeFile(this.file(externalId, 'terminated'), reason);
      this.report(record, stoppedStatus(reason));
      return;
    }
    const record = await this.recordOf(externalId);
    if (!record?.pid || !(await this.isAlive(record))) return; // never started here, or already over
    await writeFile(this.file(externalId, 'terminated'), reason);
    const pid = record.pid;
    signalGroup(pid, 'SIGTERM');
    setTimeout(() => {
      void this.isAlive(record).then((alive) => alive && signalGroup(pid, 'SIGKILL'));
    }, this.terminateGraceMs).unref();
  }

  /**
   * After a restart: queues again the jobs a previous server left waiting for a slot, watches
   * engines it started that still run, and reports jobs that ended without their final event
   * being delivered. Returns the ids it re-attached to. Engines that vanished without an exit
   * code are left to the reconciler (`describe` says `gone`, with the reason).
   */
  async resume(): Promise<string[]> {
    await this.ready;
    const attached: string[] = [];
    const waiting: JobRecord[] = [];
    const names = await readdir(this.stateDir);
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const externalId = name.slice(0, -'.json'.length);
      if (!ID_PATTERN.test(externalId) || this.watched.has(externalId) || this.starting.has(externalId)) continue;
      if (this.queue.some((queued) => queued.record.externalId === externalId)) continue;
      const record = await this.readRecord(externalId);
      if (!record || record.reportedAt) continue;
      if (record.pid === undefined) {
        // Never spawned: still waiting, unless it was terminated or found no engine meanwhile.
        const ended = (await this.finalStatus(record)) ?? (await this.terminatedStatus(externalId));
        if (ended) this.report(record, ended);
        else if (!(await this.spawnBegun(externalId))) waiting.push(record);
        continue;
      }
      const alive = await this.isAlive(record);
      const final = await this.finalStatus(record);
      if (final?.state === 'succeeded' || final?.state === 'failed') {
        this.report(record, final);
      } else if (alive) {
        this.poll(record);
        attached.push(externalId);
      }
    }
    // Submitted before anything this server was given, so ahead of it, in their own order.
    waiting.sort((a, b) => a.submittedAt.localeCompare(b.submittedAt) || a.jobId - b.jobId);
    this.queue.unshift(...waiting.map((record) => ({ record })));
    this.pump();
    return attached;
  }

  /** Stops watching and starting engines; running engines keep running. Waits for queued events. */
  async close(): Promise<void> {
    this.closed = true;
    for (const watched of this.watched.values()) {
      if (watched.timer) clearInterval(watched.timer);
      watched.detach?.();
    }
    this.watched.clear();
    // Pending SIGKILL escalations of `terminate` still fire (their timers do not hold the process).
    await this.events;
  }

  private pump(): void {
    for (;;) {
      if (this.closed) return;
      const slotFree = this.usedSlots() < this.concurrency;
      const index = this.queue.findIndex(({ record }) => slotFree || TAKES_NO_SLOT.has(record.kind));
      if (index < 0) return;
      const [{ record }] = this.queue.splice(index, 1) as [Queued];
      if (!TAKES_NO_SLOT.has(record.kind)) this.starting.set(record.externalId, record);
      void this.start(record)
        .catch((error: unknown) => {
          this.log({ level: 'error', msg: 'engine start failed', externalId: record.externalId, error: String(error) });
          this.report(record, { state: 'failed', reason: `The engine could not be started: ${errorMessage(error)}` });
        })
        .finally(() => {
          this.starting.delete(record.externalId);
          this.pump();
        });
    }
  }

  private async start(record: JobRecord): Promise<void> {
    const { externalId } = record;
    const executable = await this.findExecutable();
    if (!executable) {
      const sentence = missingEngineSentence(this.engineCommand[0]!);
      // Recorded like any other failure, so `describe` says the same after a restart.
      await writeFile(this.file(externalId, 'stderr'), `${sentence}\n`);
      await writeAtomic(this.file(externalId, 'exit'), '127\n');
      this.report(record, { state: 'failed', reason: sentence, failure: { cause: 'engine_missing', exitCode: 127 } });
      return;
    }
    if (this.closed) return; // stays recorded without a pid: the next server's resume() queues it

    const stdout = openSync(this.file(externalId, 'stdout'), 'a');
    const stderr = openSync(this.file(externalId, 'stderr'), 'a');
    let child;
    try {
      child = spawn('/bin/sh', ['-c', WRAPPER, 'bakehouse-engine', this.file(externalId, 'exit'), executable, ...this.engineCommand.slice(1), 'run', record.specUri], {
        detached: true,
        stdio: ['ignore', stdout, stderr],
        env: this.env,
      });
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
    const pid = child.pid;
    if (pid === undefined) {
      const failure = await new Promise<Error>((done) => child.once('error', done));
      throw failure;
    }
    child.unref();
    const started: JobRecord = { ...record, pid, startedAt: new Date().toISOString() };
    const onExit = () => void this.finish(started);
    child.once('exit', onExit);
    // All before the first await, so that `running` is queued before any final event.
    const written = this.writeRecord(started);
    this.watched.set(externalId, { record: started, written, detach: () => child.off('exit', onExit) });
    this.starting.delete(externalId);
    this.emit({ externalId, jobId: record.jobId, state: 'running' });
    // The engine runs whatever happens to this write; without the pid a restart reads it as gone.
    await written.catch((error: unknown) =>
      this.log({ level: 'error', msg: 'could not record the engine pid', externalId, error: errorMessage(error) }),
    );
  }

  /**
   * Whether spawning the engine began: its output files are created just before. A record with
   * them but no pid was being started when the server stopped, and the engine may be running.
   */
  private async spawnBegun(externalId: string): Promise<boolean> {
    return access(this.file(externalId, 'stderr')).then(
      () => true,
      () => false,
    );
  }

  /** Watches an engine that is not our child by polling its pid and exit file. */
  private poll(record: JobRecord): void {
    const timer = setInterval(() => {
      void this.isAlive(record).then((alive) => {
        if (!alive && this.watched.get(record.externalId)?.timer === timer) void this.finish(record);
      });
    }, this.pollIntervalMs);
    timer.unref();
    this.watched.set(record.externalId, { record, timer });
  }

  private async finish(record: JobRecord): Promise<void> {
    const watched = this.watched.get(record.externalId);
    if (!watched || watched.finishing) return;
    watched.finishing = true;
    if (watched.timer) clearInterval(watched.timer);
    await watched.written?.catch(() => {});
    const final = await this.finalStatus(record);
    const terminated = await this.terminatedStatus(record.externalId);
    if (this.closed) return; // unreported: the next server's resume() reports it
    const status: ComputeStatus = final ??
      terminated ?? {
        state: 'failed',
        reason: `The engine process (pid ${record.pid}) ended without recording an exit code; it was probably killed`,
        failure: { cause: 'vanished' },
      };
    // Reported before the slot is given to the next job, so events never show more than
    // `concurrency` jobs running.
    this.report(record, status);
    this.watched.delete(record.externalId);
    this.pump();
  }

  /** The job's outcome from its exit file, or undefined while there is none. */
  private async finalStatus(record: JobRecord): Promise<ComputeStatus | undefined> {
    const exit = await readOptional(this.file(record.externalId, 'exit'));
    if (exit === undefined || !/^\d+\s*$/.test(exit)) return undefined;
    const code = Number(exit.trim());
    if (code === 0) return { state: 'succeeded' };
    return (await this.terminatedStatus(record.externalId)) ?? (await this.failedStatus(record.externalId, code));
  }

  /**
   * An engine that exited non-zero: the exit code and any signal, for the user's sentence, and
   * the tail of its stderr as the operators' reason.
   */
  private async failedStatus(externalId: string, code: number): Promise<ComputeStatus> {
    const tail = await readTail(this.file(externalId, 'stderr'), this.stderrTailLines);
    // 127: the shell found no engine to run (start() also records that code when it finds none).
    if (code === 127 || ENGINE_MODULE_MISSING.test(tail)) {
      const sentence = missingEngineSentence(this.engineCommand[0]!);
      const reason = tail.startsWith(sentence) ? tail : [sentence, tail].filter(Boolean).join('\n');
      return { state: 'failed', reason, failure: { cause: 'engine_missing', exitCode: code } };
    }
    const signal = signalName(code);
    const reason = tail || `The engine exited with code ${code}${code > 128 ? ` (signal ${code - 128})` : ''} and wrote nothing to stderr`;
    return { state: 'failed', reason, failure: { exitCode: code, ...(signal ? { signal } : {}) } };
  }

  private async terminatedStatus(externalId: string): Promise<ComputeStatus | undefined> {
    const reason = await readOptional(this.file(externalId, 'terminated'));
    return reason === undefined ? undefined : stoppedStatus(reason);
  }

  /** Sends the final event, then marks the job reported (so `resume` does not send it again). */
  private report(record: JobRecord, status: ComputeStatus): void {
    if (status.state !== 'succeeded' && status.state !== 'failed') return;
    const event: ComputeEvent = { externalId: record.externalId, jobId: record.jobId, state: status.state };
    if (status.reason !== undefined) event.reason = status.reason;
    if (status.failure !== undefined) event.failure = status.failure;
    this.emit(event, async () => {
      const current = (await this.readRecord(record.externalId)) ?? record;
      await this.writeRecord({ ...current, reportedAt: new Date().toISOString() });
    });
  }

  private emit(event: ComputeEvent, delivered?: () => Promise<void>): void {
    this.events = this.events.then(async () => {
      try {
        await this.onEvent(event);
      } catch (error) {
        this.log({ level: 'error', msg: 'compute event handler failed', ...event, error: errorMessage(error) });
        return;
      }
      await delivered?.().catch((error: unknown) =>
        this.log({ level: 'error', msg: 'could not mark job reported', externalId: event.externalId, error: String(error) }),
      );
    });
  }

  /** Whether the wrapper still runs, and is ours: a recycled pid belongs to some other command. */
  private async isAlive(record: JobRecord): Promise<boolean> {
    if (record.pid === undefined) return false;
    try {
      process.kill(record.pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
    }
    if (!HAS_PROC) return true;
    // A zombie's cmdline is empty, and one reaped since the pid check has no entry at all (its
    // parent may be this very process): neither is running.
    const cmdline = await readOptional(`/proc/${record.pid}/cmdline`);
    return cmdline?.includes(record.externalId) ?? false;
  }

  private async findExecutable(): Promise<string | undefined> {
    const command = this.engineCommand[0]!;
    const candidates = command.includes('/')
      ? [resolve(command)]
      : (this.env.PATH ?? '').split(delimiter).filter(isAbsolute).map((dir) => join(dir, command));
    for (const candidate of candidates) {
      try {
        await access(candidate, constants.X_OK);
        return candidate;
      } catch {
        // try the next
      }
    }
    return undefined;
  }

  private file(externalId: string, kind: 'json' | 'exit' | 'stderr' | 'stdout' | 'terminated'): string {
    return join(this.stateDir, `${externalId}.${kind}`);
  }

  /** What this server knows first (its file may still be being written), else the file. */
  private async recordOf(externalId: string): Promise<JobRecord | undefined> {
    return this.watched.get(externalId)?.record ?? (await this.readRecord(externalId));
  }

  private async readRecord(externalId: string): Promise<JobRecord | undefined> {
    const text = await readOptional(this.file(externalId, 'json'));
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as JobRecord;
    } catch {
      return undefined;
    }
  }

  private writeRecord(record: JobRecord): Promise<void> {
    return writeAtomic(this.file(record.externalId, 'json'), `${JSON.stringify(record)}\n`);
  }
}

/** A job stopped by `terminate`, with the reason it was given. */
function stoppedStatus(reason: string): ComputeStatus {
  const given = reason.trim();
  return { state: 'failed', reason: `Terminated: ${given || 'no reason given'}`, failure: { cause: 'stopped', ...(given ? { stoppedBecause: given } : {}) } };
}

/** The signal behind a shell exit code of 128 + n, by name. */
function signalName(code: number): string | undefined {
  if (code <= 128) return undefined;
  return Object.entries(osConstants.signals).find(([, number]) => number === code - 128)?.[0];
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const partial = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(partial, content);
  await rename(partial, path);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES') return undefined;
    throw error;
  }
}

/** The last `lines` non-empty lines of a file, reading at most its last 16 KiB. */
async function readTail(path: string, lines: number): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 16 * 1024);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    return text
      .split(/\r?\n/)
      .filter((line) => line.trim() !== '')
      .slice(-lines)
      .join('\n');
  } finally {
    await handle.close();
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

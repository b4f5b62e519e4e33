import type { Blobs } from '../../ports/blobs.ts';
import { JobProgress, JobResult, JobSpec as JobSpecSchema, type JobSpec } from '../../schemas/job-spec.ts';

/**
 * Where a job's files live in Blobs, and how they are read back. The layout is the engine
 * contract (functions/schemas/job-spec.ts).
 */
export const jobPaths = (jobId: number) => {
  const prefix = `jobs/${jobId}/`;
  return {
    prefix,
    spec: `${prefix}spec.json`,
    progress: `${prefix}progress.json`,
    output: `${prefix}output.jsonl`,
    outputIndex: `${prefix}output.idx`,
    metrics: `${prefix}metrics.jsonl`,
    result: `${prefix}result.json`,
    /** The engine's log, written by the engine itself (cli.py), downloadable by the job's owner. */
    log: `${prefix}engine.log`,
    checkpoint: (step: number) => `${prefix}ckpts/${step}/`,
    archive: (step: number) => `${prefix}ckpts/${step}.tar.gz`,
  };
};

/** output.idx holds one little-endian uint64 byte offset per line of output.jsonl. */
const OFFSET_BYTES = 8;

export interface OutputPage {
  lines: Record<string, unknown>[];
  /** Lines available now (the job may still be appending). */
  total: number;
}

export class JobOutputs {
  constructor(private readonly blobs: Blobs) {}

  async writeSpec(spec: JobSpec): Promise<string> {
    const key = jobPaths(spec.job_id).spec;
    await this.blobs.put(key, JSON.stringify(spec), 'application/json');
    return this.blobs.uriFor(key);
  }

  async readSpec(jobId: number): Promise<JobSpec> {
    const spec = await this.json(jobPaths(jobId).spec);
    if (!spec) throw new Error(`Job ${jobId} has no stored spec`);
    return JobSpecSchema.parse(spec);
  }

  uriFor(key: string): string {
    return this.blobs.uriFor(key);
  }

  async progress(jobId: number): Promise<JobProgress | undefined> {
    const parsed = JobProgress.safeParse(await this.json(jobPaths(jobId).progress));
    return parsed.success ? parsed.data : undefined;
  }

  /** The engine's result.json; undefined when it wrote none (it crashed or was killed). */
  async result(jobId: number): Promise<JobResult | undefined> {
    const parsed = JobResult.safeParse(await this.json(jobPaths(jobId).result));
    return parsed.success ? parsed.data : undefined;
  }

  /** Number of complete lines: those whose offset is in the index. */
  async lineCount(jobId: number): Promise<number> {
    const size = await this.blobs.size(jobPaths(jobId).outputIndex);
    return Math.floor((size ?? 0) / OFFSET_BYTES);
  }

  /**
   * Lines [offset, offset + limit) of the output, reading only those bytes: their offsets from
   * the index, then one range of output.jsonl.
   */
  async page(jobId: number, offset: number, limit: number): Promise<OutputPage> {
    const paths = jobPaths(jobId);
    const total = await this.lineCount(jobId);
    if (offset >= total) return { lines: [], total };
    const count = Math.min(limit, total - offset);
    // One offset past the page gives its end; the last line ends where the file ends.
    const wanted = Math.min(count + 1, total - offset);
    const index = await this.blobs.get(paths.outputIndex, { start: offset * OFFSET_BYTES, end: (offset + wanted) * OFFSET_BYTES });
    if (!index) return { lines: [], total: 0 };
    const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
    const offsets = Array.from({ length: wanted }, (_, i) => Number(view.getBigUint64(i * OFFSET_BYTES, true)));
    const start = offsets[0]!;
    const end = wanted > count ? offsets[count]! : await this.blobs.size(paths.output);
    const bytes = await this.blobs.get(paths.output, { start, end });
    const text = new TextDecoder().decode(bytes ?? new Uint8Array());
    const lines = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(0, count)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { lines, total };
  }

  async metrics(jobId: number): Promise<Record<string, unknown>[]> {
    const bytes = await this.blobs.get(jobPaths(jobId).metrics);
    if (!bytes) return [];
    return new TextDecoder()
      .decode(bytes)
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return []; // a row still being written
        }
      });
  }

  /**
   * The engine's log, or undefined before it wrote one. Beyond `maxBytes` only its end is read,
   * from the first whole line, after a line saying so.
   */
  async log(jobId: number, maxBytes: number): Promise<string | undefined> {
    const key = jobPaths(jobId).log;
    const size = await this.blobs.size(key);
    if (size === undefined) return undefined;
    const start = Math.max(0, size - maxBytes);
    const text = new TextDecoder().decode((await this.blobs.get(key, { start, end: size })) ?? new Uint8Array());
    if (start === 0) return text;
    return `[the first ${start + text.indexOf('\n') + 1} bytes of this log are left out]\n${text.slice(text.indexOf('\n') + 1)}`;
  }

  async presignArchive(jobId: number, step: number, expiresIn: number): Promise<string | undefined> {
    const key = jobPaths(jobId).archive(step);
    if ((await this.blobs.size(key)) === undefined) return undefined;
    return this.blobs.presignGet(key, expiresIn);
  }

  async discard(jobId: number): Promise<void> {
    await this.blobs.deletePrefix(jobPaths(jobId).prefix);
  }

  private async json(key: string): Promise<unknown> {
    const bytes = await this.blobs.get(key);
    if (!bytes) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return undefined;
    }
  }
}

/** Small helpers shared by the benchmarks: timing and percentiles. */

export interface Summary {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
}

/** The q-quantile (0 ≤ q ≤ 1) of values sorted ascending: the sample at rank ⌊q·n⌋. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function summarise(samplesNs: bigint[], wallNs: bigint): Summary {
  const ms = samplesNs.map((ns) => Number(ns) / 1e6).sort((a, b) => a - b);
  const at = (q: number) => quantile(ms, q);
  return {
    count: ms.length,
    perSecond: round(ms.length / (Number(wallNs) / 1e9)),
    p50Ms: round(at(0.5), 3),
    p99Ms: round(at(0.99), 3),
    meanMs: round(ms.reduce((sum, x) => sum + x, 0) / ms.length, 3),
  };
}

/** Runs `fn` sequentially `count` times after `warmup` runs, timing each call. */
export async function measure(count: number, warmup: number, fn: (i: number) => Promise<unknown>): Promise<Summary> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const samples: bigint[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    samples.push(process.hrtime.bigint() - t0);
  }
  return summarise(samples, process.hrtime.bigint() - started);
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** JSON calls with a bearer key to an in-process app (or any fetch); a non-2xx answer throws. */
export function jsonCaller(fetchLike: (path: string, init: RequestInit) => Response | Promise<Response>, key: string) {
  return async (method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const response = await fetchLike(path, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status >= 300) throw new Error(`${method} ${path} → ${response.status} ${await response.text()}`);
    return (await response.json()) as Record<string, unknown>;
  };
}

import { describe, expect, it } from 'vitest';
import { failureSentence, userFacing } from './failure-reasons.ts';

const bake = { kind: 'bake' as const, owner: { userId: 'alice', repo: 'r1', name: 'b1' } };
const sampler = { kind: 'sampler' as const, owner: { userId: '', repo: '', name: 'bakehouse/toy-instruct' } };

describe('failureSentence', () => {
  it("prefers the engine's own sentence", () => {
    expect(failureSentence({ ...bake, engineError: 'No space left on disk while writing checkpoint 40; free some space, then run the bake again.', failure: { exitCode: 1 } })).toBe(
      'No space left on disk while writing checkpoint 40; free some space, then run the bake again.',
    );
  });

  it('names the signal, the progress and the likely cause of a kill', () => {
    expect(failureSentence({ ...bake, failure: { exitCode: 137, signal: 'SIGKILL' }, percent: 33.4 })).toBe(
      'The bake was stopped by signal 9 (SIGKILL, out of memory?) at 33%; run it again.',
    );
    expect(failureSentence({ ...bake, failure: { exitCode: 143 } })).toBe('The bake was stopped by signal 15 (SIGTERM); run it again.');
  });

  it('says a dead model server stopped, and to try again', () => {
    expect(failureSentence({ ...sampler, failure: { exitCode: 137, signal: 'SIGKILL' }, percent: 50 })).toBe(
      'The model server stopped unexpectedly (signal 9, out of memory?); try again.',
    );
  });

  it('words what the platform saw', () => {
    expect(failureSentence({ ...bake, failure: { cause: 'out_of_memory', exitCode: 137 }, percent: 50 })).toBe(
      'The bake ran out of memory at 50% and was stopped; lower micro_batch_size or data.max_length, or use larger instances, then run it again.',
    );
    expect(failureSentence({ ...bake, failure: { cause: 'host_lost' } })).toBe('The bake lost its machine (a Spot reclaim or a host failure); run it again.');
    expect(failureSentence({ ...sampler, failure: { cause: 'stopped', stoppedBecause: 'The local server stopped.' } })).toBe(
      'The model server was stopped before it finished (the local server stopped); try again.',
    );
  });

  it('points at the log when nothing says why', () => {
    expect(failureSentence({ ...bake, failure: { exitCode: 3 } })).toBe(
      'The bake failed: the engine exited with code 3 without saying why; its log (GET /v1/repo/r1/bakes/b1/logs) has the details, then run it again.',
    );
    expect(failureSentence({ kind: 'rollout', owner: { userId: 'alice', repo: 'r1', name: 't1' }, exitedWithoutResult: true })).toBe(
      'The rollout ended without writing its result; its log (GET /v1/repo/r1/targets/t1/rollout/logs) has the details, then run it again.',
    );
  });
});

describe('userFacing', () => {
  it('replaces file://, s3:// and absolute paths, keeping API routes and model names', () => {
    expect(userFacing('Nothing was found at file:///home/alice/.data/blobs/jobs/3/output.jsonl; check it')).toBe(
      'Nothing was found at [internal path]; check it',
    );
    expect(userFacing('Could not read s3://bucket/jobs/3/spec.json')).toBe('Could not read [internal path]');
    expect(userFacing("Error loading '/tmp/bakehouse-bake-3-x/parents/0/adapter_model.safetensors' for bakehouse/toy-instruct")).toBe(
      "Error loading '[internal path]' for bakehouse/toy-instruct",
    );
    expect(userFacing('see GET /v1/repo/r1/bakes/b1/logs')).toBe('see GET /v1/repo/r1/bakes/b1/logs');
  });

  it('keeps the first line only, and a bounded length', () => {
    expect(userFacing('2026-12-02 00:49:27,560 bakehouse_engine INFO bake job 18 starting\nTraceback (most recent call last):')).toBe(
      '2026-12-02 00:49:27,560 bakehouse_engine INFO bake job 18 starting',
    );
    expect(userFacing('x'.repeat(2000))).toHaveLength(500);
  });
});

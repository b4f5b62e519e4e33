/**
 * TrainingCheckpoints' times to live under a clock the test moves: a checkpoint is hidden the
 * moment it expires, and the retention sweep then deletes its record, its id, its public marker
 * and its files; a time to live can be moved or removed before that.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import type { Actor } from '#core/actor.ts';
import { NotFoundError, ValidationError } from '#core/errors.ts';
import { keys } from '#core/keys.ts';
import { checkpointPrefix, type CheckpointAddress } from '#core/training/checkpoint-paths.ts';
import { TrainingCheckpoints } from '#core/training/checkpoints.ts';
import type { Clock } from '#ports/clock.ts';

const ALICE: Actor = { userId: 'alice', isAdmin: false };
const BOB: Actor = { userId: 'bob', isAdmin: false };
const RUN = { ...keys.trainingRun('run0001'), id: 'run0001', user_id: 'alice', base_model: 'bakehouse/toy-instruct' };
const HOUR_S = 3600;

/** A clock that stands still until the test moves it. */
class MovableClock implements Clock {
  private ms = Date.parse('2026-01-01T00:00:00Z');
  now = () => new Date(this.ms);
  advance(seconds: number) {
    this.ms += seconds * 1000;
  }
}

let dir: string;
let store: SqliteStore;
let blobs: LocalBlobs;
let clock: MovableClock;
let checkpoints: TrainingCheckpoints;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bakehouse-checkpoint-expiry-'));
  store = new SqliteStore(':memory:');
  clock = new MovableClock();
  blobs = new LocalBlobs({ root: dir, baseUrl: 'http://blobs.test', signingKey: 'a-test-signing-key-0123', clock });
  checkpoints = new TrainingCheckpoints(store, blobs, clock, { ephemeralKeep: 8, ephemeralIdleS: 600, fileUrlExpiresS: 60 });
  await store.put(RUN);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A sampler checkpoint saved with its one file, as the trainer reports a save. */
async function saved(name: string, ttlSeconds: number | null = null) {
  const address: CheckpointAddress = { runId: RUN.id, target: 'sampler', name };
  await blobs.put(`${checkpointPrefix(address)}adapter_model.safetensors`, 'weights');
  return checkpoints.record(RUN, {
    address,
    result: { step: 1, policy_version: 0, files: [{ name: 'adapter_model.safetensors', size_bytes: 7 }], lora_config: { r: 8, lora_alpha: 16, target_modules: ['q_proj'] } },
    publish: false,
    ttlSeconds,
  });
}

/** The run's live checkpoints by name, in name order (the standing clock gives them one creation time). */
const names = async () => (await checkpoints.list(ALICE, { runId: RUN.id })).map((checkpoint) => checkpoint.name).sort();

describe('a checkpoint’s time to live', () => {
  it('hides the checkpoint once it expires, and the sweep then deletes its record, id, public marker and files', async () => {
    const brief = await saved('brief');
    await saved('kept');
    await checkpoints.setPublic(ALICE, brief.id, true);
    const set = await checkpoints.setTimeToLive(ALICE, brief.id, HOUR_S);
    expect(set.expiresAt).toBe('2026-01-01T01:00:00.000Z');
    expect((await checkpoints.get(ALICE, brief.id)).expiresAt).toBe('2026-01-01T01:00:00.000Z');

    clock.advance(HOUR_S - 1);
    expect(await checkpoints.sweep()).toBe(0);
    expect(await names()).toEqual(['brief', 'kept']);

    clock.advance(1);
    expect(await names()).toEqual(['kept']);
    await expect(checkpoints.get(ALICE, brief.id)).rejects.toThrow(NotFoundError);
    expect(await checkpoints.readable(BOB, brief.path)).toBeUndefined();
    expect(await checkpoints.sweep()).toBe(1);
    expect(await store.get(keys.trainingCheckpoint(RUN.id, 'sampler', 'brief'))).toBeUndefined();
    expect(await store.get(keys.trainingCheckpointId(brief.id))).toBeUndefined();
    expect((await store.query(keys.publicTrainingCheckpoints)).items).toEqual([]);
    expect(await blobs.list(checkpointPrefix({ runId: RUN.id, target: 'sampler', name: 'brief' }))).toEqual([]);
    expect(await blobs.list(checkpointPrefix({ runId: RUN.id, target: 'sampler', name: 'kept' }))).toHaveLength(1);
    // Nothing left to watch: the run's retention marker goes too.
    expect((await store.query(keys.trainingRetentions)).items).toEqual([]);
    expect(await checkpoints.sweep()).toBe(0);
  });

  it('can be moved later or removed, which the sweep honours', async () => {
    const moved = await saved('moved', HOUR_S);
    const forever = await saved('forever', HOUR_S);
    clock.advance(HOUR_S / 2);
    await checkpoints.setTimeToLive(ALICE, moved.id, HOUR_S);
    expect((await checkpoints.setTimeToLive(ALICE, forever.id, null)).expiresAt).toBeNull();

    clock.advance(HOUR_S / 2);
    expect(await checkpoints.sweep()).toBe(0);
    expect(await names()).toEqual(['forever', 'moved']);
    clock.advance(HOUR_S / 2);
    expect(await checkpoints.sweep()).toBe(1);
    expect(await names()).toEqual(['forever']);
    clock.advance(10 * 365 * 24 * HOUR_S);
    expect(await checkpoints.sweep()).toBe(0);
    expect(await names()).toEqual(['forever']);
  });

  it('is honoured when set while a sweep that read the run before it is unmarking that run', async () => {
    await saved('old', HOUR_S);
    const late = await saved('late');
    clock.advance(HOUR_S);
    // The sweep reads the run's checkpoints (old expired, late with no time to live); the time to
    // live on late lands before the sweep, which saw nothing left to watch, unmarks the run.
    const query = store.query.bind(store);
    let raced = false;
    store.query = (async (...args: Parameters<typeof store.query>) => {
      const result = await query(...args);
      if (!raced && JSON.stringify(args[0]) === JSON.stringify(keys.trainingCheckpoints(RUN.id))) {
        raced = true;
        await checkpoints.setTimeToLive(ALICE, late.id, HOUR_S);
      }
      return result;
    }) as typeof store.query;
    expect(await checkpoints.sweep()).toBe(1);
    expect(raced).toBe(true);
    expect((await store.query(keys.trainingRetentions)).items).toHaveLength(1);

    clock.advance(HOUR_S);
    expect(await checkpoints.sweep()).toBe(1);
    expect(await names()).toEqual([]);
    expect(await store.get(keys.trainingCheckpoint(RUN.id, 'sampler', 'late'))).toBeUndefined();
  });

  it('is set by the checkpoint’s owner alone, to a positive whole number of seconds', async () => {
    const checkpoint = await saved('mine');
    await expect(checkpoints.setTimeToLive(BOB, checkpoint.id, HOUR_S)).rejects.toThrow(NotFoundError);
    await expect(checkpoints.setTimeToLive(ALICE, 'nosuch1', HOUR_S)).rejects.toThrow(NotFoundError);
    for (const ttl of [0, -5, 1.5]) await expect(checkpoints.setTimeToLive(ALICE, checkpoint.id, ttl)).rejects.toThrow(ValidationError);
    expect((await checkpoints.get(ALICE, checkpoint.id)).expiresAt).toBeNull();
  });
});

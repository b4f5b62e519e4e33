/**
 * Where checkpoints are named and stored. A checkpoint is addressed by its run, its target and its
 * name; `bt://loops:<run>/(weights|sampler_weights)/<name>` is how the Loops front shows that
 * address (loops-api.md §1.6); `tinker://<model_id>/(weights|sampler_weights)/<name>` is how the
 * Tinker front shows the same one (§2.12), where `model_id` is the run's alias or, for a run
 * without one, its id. External weights (Tinker 0.38's `save_weights_external`, §2.14) live under
 * `external_weights/<name>` in both schemes. Parsing happens in `parseCheckpointPath` alone.
 */
import type { CheckpointTarget, SaveWhat } from './model.ts';
import { ValidationError } from '../errors.ts';

export interface CheckpointAddress {
  runId: string;
  target: CheckpointTarget;
  name: string;
}

const DIRECTORY: Record<CheckpointTarget, string> = { trainer: 'weights', sampler: 'sampler_weights', external: 'external_weights' };
const TARGET_OF_DIRECTORY: Record<string, CheckpointTarget> = { weights: 'trainer', sampler_weights: 'sampler', external_weights: 'external' };
const BT_PATH = /^bt:\/\/loops:([0-9A-Za-z]+)\/(weights|sampler_weights|external_weights)\/([^/]+)$/;
const TINKER_PATH = /^tinker:\/\/([^/]+)\/(weights|sampler_weights|external_weights)\/([^/]+)$/;

const TARGET_OF_SAVE: Record<SaveWhat, CheckpointTarget> = { state: 'trainer', sampler: 'sampler', external: 'external' };

/** The target a save writes to. */
export const targetOfSave = (what: SaveWhat): CheckpointTarget => TARGET_OF_SAVE[what];

const SAVE_OF_TARGET: Record<CheckpointTarget, SaveWhat> = { trainer: 'state', sampler: 'sampler', external: 'external' };

/** The save that writes to a target. */
export const saveOfTarget = (target: CheckpointTarget): SaveWhat => SAVE_OF_TARGET[target];

const HOLDS: Record<CheckpointTarget, string> = {
  trainer: 'training state',
  sampler: 'sampler weights',
  external: 'external weights (an adapter exported for download)',
};

const KIND: Record<CheckpointTarget, string> = { trainer: 'a training checkpoint', sampler: 'a sampler checkpoint', external: 'an external weights checkpoint' };

/** What a checkpoint of the target holds, and what kind it is: for the sentences that refuse it where another kind is needed. */
export const whatItHolds = (target: CheckpointTarget): string => HOLDS[target];
export const checkpointKind = (target: CheckpointTarget): string => KIND[target];

/**
 * A parsed path: `run` is the run id (`bt://`) or the Tinker `model_id` (`tinker://`), which
 * names the run by its alias or its id; TrainingCheckpoints resolves it to an address.
 */
export interface CheckpointReference {
  scheme: 'bt' | 'tinker';
  run: string;
  target: CheckpointTarget;
  name: string;
}

/** What a save may be named: the characters of a file name, and not `.` or `..`. */
const CHECKPOINT_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Published once per sampling client, and subject to retention: Loops' `<name>-<uuid4 hex>`
 * (loops-data-plane.md §11) and Tinker's unnamed `ephemeral_<n>` (loops-api.md §2.12).
 */
const EPHEMERAL_NAME = /-[0-9a-f]{32}$|^ephemeral_\d+$/;

export function parseCheckpointPath(path: string): CheckpointReference | undefined {
  const scheme = path.startsWith('tinker://') ? 'tinker' : 'bt';
  const match = (scheme === 'tinker' ? TINKER_PATH : BT_PATH).exec(path);
  if (!match) return undefined;
  const [, run, directory, name] = match as unknown as [string, string, string, string];
  if (!isCheckpointName(name)) return undefined;
  return { scheme, run, target: TARGET_OF_DIRECTORY[directory]!, name };
}

export function checkpointPath({ runId, target, name }: CheckpointAddress): string {
  return `bt://loops:${runId}/${DIRECTORY[target]}/${name}`;
}

/** The Tinker twin of a checkpoint's `bt://` path, under the model id the Tinker front shows for its run. */
export function tinkerCheckpointPath(modelId: string, { target, name }: Pick<CheckpointAddress, 'target' | 'name'>): string {
  return `tinker://${modelId}/${DIRECTORY[target]}/${name}`;
}

/** Tinker's `checkpoint_id`: `weights/<name>`, `sampler_weights/<name>` or `external_weights/<name>`. */
export function tinkerCheckpointId({ target, name }: Pick<CheckpointAddress, 'target' | 'name'>): string {
  return `${DIRECTORY[target]}/${name}`;
}

export function isCheckpointName(name: string): boolean {
  return CHECKPOINT_NAME.test(name) && !/^\.+$/.test(name);
}

export function assertCheckpointName(name: string): void {
  if (!isCheckpointName(name)) {
    throw new ValidationError(`name: '${name}' is not a checkpoint name; use 1 to 128 letters, digits, '.', '_' or '-' (not only dots).`);
  }
}

export function isEphemeralName(name: string): boolean {
  return EPHEMERAL_NAME.test(name);
}

/** The blob prefix a checkpoint's files live under; a save overwrites it whole. */
export function checkpointPrefix({ runId, target, name }: CheckpointAddress): string {
  return `training/runs/${runId}/checkpoints/${target}/${name}/`;
}

/** Where a run's trainer autosaves before scaling to zero, and restores from when it comes back. */
export function runStatePrefix(runId: string): string {
  return `training/runs/${runId}/state/`;
}

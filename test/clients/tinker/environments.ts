/**
 * Where the tinker SDK environments live (test/clients/tinker/setup_env.sh, run by `npm run setup`
 * and before `npm test`): one per targeted version (loops-api.md §2.14), outside the tree.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const TINKER_VERSIONS = ['0.16.1', '0.25.0', '0.38.0'] as const;
export type TinkerVersion = (typeof TINKER_VERSIONS)[number];

/** The SDK's own scripts and its pinned requirements, per version. */
export const TINKER_CLIENT_DIR = import.meta.dirname;

/** The python of the environment that has `tinker` at `version`; throws when setup has not made it. */
export function tinkerPython(version: TinkerVersion): string {
  const root = process.env.BAKEHOUSE_TINKER_ENVS || join(homedir(), '.cache', 'bakehouse', 'tinker-sdk');
  const python = join(root, version, 'bin', 'python');
  if (!existsSync(python)) throw new Error(`${python} is missing: create it with \`npm run setup\` (test/clients/tinker/setup_env.sh).`);
  return python;
}

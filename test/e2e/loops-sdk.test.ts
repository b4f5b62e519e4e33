/**
 * The official Loops SDK (`baseten-loops` 0.32.0 on PyPI, unchanged, in its own environment
 * test/clients/loops/.venv: `npm run setup`) against a real local server, the real engine and the
 * toy model.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const LOOPS_CLIENT = join(import.meta.dirname, '..', 'clients', 'loops');
const PYTHON = join(LOOPS_CLIENT, '.venv', 'bin', 'python');

describe('the baseten-loops SDK environment', () => {
  it('imports baseten.loops 0.32.0', async () => {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: create it with \`npm run setup\` (test/clients/loops/setup_env.sh).`);
    const { stdout } = await promisify(execFile)(PYTHON, [
      '-c',
      'import importlib.metadata, baseten.loops; print(importlib.metadata.version("baseten-loops"))',
    ]);
    expect(stdout.trim()).toBe('0.32.0');
  });
});

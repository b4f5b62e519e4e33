#!/usr/bin/env node
// Installs what the project needs on a fresh machine, before `npm start` and `npm test`:
// the npm packages, when node_modules is missing or older than package-lock.json; the web
// console's build (functions/console/dist); then the engine's Python environment and the toy
// model (batch/engine/setup_env.sh, itself idempotent), and for the tests the client SDKs'
// environments (test/clients/setup_env.sh, test/clients/loops/setup_env.sh and
// test/clients/tinker/setup_env.sh) and Chromium
// (test/support/install-chromium.sh). Plain Node with no dependencies, since it runs before any
// are installed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const lockFile = join(root, 'package-lock.json');
const stamp = join(root, 'node_modules', '.bakehouse-lock-hash');

const lockHash = createHash('sha256').update(readFileSync(lockFile)).digest('hex');
const installed = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';

if (installed !== lockHash) {
  const env = { ...process.env };
  // better-sqlite3 compiles from source where no prebuilt binary can be downloaded; point
  // node-gyp at the system's Node headers instead of fetching them.
  if (!env.npm_config_nodedir && existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';
  console.log('Installing npm packages (npm ci)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', env });
  writeFileSync(stamp, `${lockHash}\n`);
}

// The web console the API serves at /console (functions/console/dist), rebuilt when any of its
// sources is newer than the last build.
const consoleDir = join(root, 'functions', 'console');
const newestSource = (dir) =>
  Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.name !== 'dist')
      .map((entry) => (entry.isDirectory() ? newestSource(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs)),
  );
const builtPage = join(consoleDir, 'dist', 'index.html');
if (!existsSync(builtPage) || statSync(builtPage).mtimeMs < Math.max(newestSource(consoleDir), statSync(lockFile).mtimeMs)) {
  console.log('Building the web console (npm run build:console)…');
  execFileSync('npm', ['run', 'build:console'], { cwd: root, stdio: 'inherit' });
}

// The engine's venv (batch/engine/.venv) and the toy model in the model cache: the script skips
// the install while its stamp matches pyproject.toml and requirements.lock.
execFileSync('bash', [join(root, 'batch', 'engine', 'setup_env.sh')], { cwd: root, stdio: 'inherit' });

// The official client SDKs the tests drive (test/clients/.venv), likewise stamped, and the Loops
// SDK's own (test/clients/loops/.venv: it needs Python 3.12+, which the script finds); serving
// the API or the demo needs none of them.
if (!['prestart', 'predemo'].includes(process.env.npm_lifecycle_event ?? '')) {
  execFileSync('bash', [join(root, 'test', 'clients', 'setup_env.sh')], { cwd: root, stdio: 'inherit' });
  execFileSync('bash', [join(root, 'test', 'clients', 'loops', 'setup_env.sh')], { cwd: root, stdio: 'inherit' });
  // One environment per tinker SDK version the Tinker tests drive, cached under ~/.cache by version.
  execFileSync('bash', [join(root, 'test', 'clients', 'tinker', 'setup_env.sh')], { cwd: root, stdio: 'inherit' });
  // Debian's Chromium for the console's browser test, installed with apt when missing.
  execFileSync('bash', [join(root, 'test', 'support', 'install-chromium.sh')], { cwd: root, stdio: 'inherit' });
}

/**
 * Debian's `chromium` driven by playwright-core (which downloads no browser of its own), for the
 * console's browser test, its benchmark and its README screenshot. `npm test`'s setup installs
 * it with apt when missing (test/support/install-chromium.sh).
 */
import { execFileSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';

/** CHROMIUM_PATH, else `chromium` on PATH. */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error("Chromium is not installed: run `npm run setup` (it installs Debian's chromium with apt) or set CHROMIUM_PATH.");
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    // Root in a container has no user namespace for Chromium's sandbox; the pages are our own.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

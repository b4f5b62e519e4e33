/**
 * The command line of the stand-in engine (test/support/stand-in-engine.mjs), for a local server's
 * `engineCommand`: with no settings, every job finishes at once.
 */
import { join } from 'node:path';

export interface StandInEngineSettings {
  /** A bake stays running, before its last checkpoint, while this file exists. */
  holdWhile?: string;
}

export function standInEngineCommand(settings: StandInEngineSettings = {}): string[] {
  const flags = settings.holdWhile === undefined ? [] : ['--hold-while', settings.holdWhile];
  return [process.execPath, join(import.meta.dirname, 'stand-in-engine.mjs'), ...flags];
}

/**
 * The command line of the stand-in engine (test/support/stand-in-engine.mjs), for a local server's
 * `engineCommand`: with no settings, every job finishes at once.
 */
import { join } from 'node:path';

export interface StandInEngineSettings {
  /** A bake stays running, before its last checkpoint, while this file exists. */
  holdWhile?: string;
  /** Metrics rows a bake logs (2 unless set). */
  bakeRows?: number;
  /** Milliseconds between a bake's metrics rows (0 unless set: all rows in one write). */
  bakeRowIntervalMs?: number;
}

export function standInEngineCommand(settings: StandInEngineSettings = {}): string[] {
  const flags = [
    ...(settings.holdWhile === undefined ? [] : ['--hold-while', settings.holdWhile]),
    ...(settings.bakeRows === undefined ? [] : ['--bake-rows', String(settings.bakeRows)]),
    ...(settings.bakeRowIntervalMs === undefined ? [] : ['--bake-row-interval-ms', String(settings.bakeRowIntervalMs)]),
  ];
  return [process.execPath, join(import.meta.dirname, 'stand-in-engine.mjs'), ...flags];
}

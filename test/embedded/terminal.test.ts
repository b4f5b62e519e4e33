import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressBar, table } from '#local/terminal.ts';

/** A stream that keeps what was written, posing as a terminal or as a log file or pipe. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  return Object.assign(stream, { isTTY, columns: 120, text: () => chunks.join('') });
}

describe('progress bars', () => {
  it('print plain lines, free of escape codes, when stdout is not a terminal, ending with the final detail', () => {
    const out = capture(false);
    const bar = new ProgressBar('stim', out);
    bar.update(40, '4 questions');
    bar.update(70, '7 questions');
    bar.done('10 questions');
    const lines = out.text().split('\n');
    expect(out.text()).not.toContain('\x1b');
    expect(lines.at(-1)).toBe(''); // the output ends with a newline and holds no blank line
    expect(lines.slice(0, -1).every((line) => line.startsWith('stim       ['))).toBe(true);
    expect(lines[0]).toMatch(/\] 40% 4 questions$/);
    expect(lines.at(-2)).toBe(`stim       [${'█'.repeat(30)}] 100% 10 questions`);
  });

  it('redraw in place on a terminal and leave the finished bar on its own line', () => {
    const out = capture(true);
    const bar = new ProgressBar('bake', out);
    bar.update(150, 'loss 0.5'); // clamped to a full bar
    bar.done('final loss 0.000370');
    expect(out.text()).toContain('\x1b['); // cursor movement and line clearing
    expect(out.text()).toContain(`bake       [${'█'.repeat(30)}] 100% final loss 0.000370`);
    expect(out.text().endsWith('\n')).toBe(true);
  });
});

describe('tables', () => {
  it('box the header and rows, wrapping a column past the width instead of widening the table', () => {
    const reply = 'The capital of France is Paris, a city of museums and cafes along the Seine.';
    const text = table(['model', 'uppercase', 'reply'], [['base model', '0%', reply], ['baked, no prompt', '100%', 'PARIS.']], 30);
    const lines = text.split('\n');
    expect(lines[0]!.startsWith('┌')).toBe(true);
    expect(lines.at(-1)!.startsWith('└')).toBe(true);
    expect(new Set(lines.map((line) => [...line].length)).size).toBe(1); // every line has the same width
    expect(lines[1]).toMatch(/│ model +│ uppercase │ reply +│/);
    const firstRow = lines.slice(3, lines.findIndex((line, i) => i > 2 && line.startsWith('├')));
    const replyCells = firstRow.map((line) => line.split('│')[3]!);
    expect(replyCells.length).toBeGreaterThan(1);
    expect(replyCells.every((cell) => cell.length === 32)).toBe(true); // 30 characters and their padding
    expect(replyCells.map((cell) => cell.trim()).join(' ')).toBe(reply);
    expect(text).toContain('│ baked, no prompt │ 100%      │ PARIS.');
  });
});

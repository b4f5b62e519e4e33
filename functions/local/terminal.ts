/** Small terminal helpers for the demo: progress bars and tables, plain ANSI, no dependencies. */

const interactive = process.stdout.isTTY === true;
const BAR_WIDTH = 30;

export const style = {
  bold: (text: string) => (interactive ? `\x1b[1m${text}\x1b[0m` : text),
  dim: (text: string) => (interactive ? `\x1b[2m${text}\x1b[0m` : text),
  green: (text: string) => (interactive ? `\x1b[32m${text}\x1b[0m` : text),
  red: (text: string) => (interactive ? `\x1b[31m${text}\x1b[0m` : text),
};

/** A one-line progress bar redrawn in place (or printed at each 10% when not a terminal). */
export class ProgressBar {
  private lastPrinted = -1;

  constructor(private readonly label: string) {}

  update(percent: number, detail = ''): void {
    const clamped = Math.max(0, Math.min(100, percent));
    const filled = Math.round((clamped / 100) * BAR_WIDTH);
    const line = `${this.label.padEnd(10)} [${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}] ${clamped.toFixed(0).padStart(3)}% ${detail}`;
    if (interactive) {
      process.stdout.write(`\r\x1b[2K${line}`);
    } else if (Math.floor(clamped / 10) !== this.lastPrinted) {
      this.lastPrinted = Math.floor(clamped / 10);
      console.log(line);
    }
  }

  done(detail: string): void {
    this.update(100, detail);
    if (interactive) process.stdout.write('\n');
  }
}

/** Renders rows as a boxed table, truncating cells to `maxWidth`. */
export function table(header: string[], rows: string[][], maxWidth = 48): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => truncate(cell.replace(/\s+/g, ' '), maxWidth)));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => [...(row[column] ?? '')].length)));
  const line = (row: string[]) => `│ ${row.map((cell, column) => cell + ' '.repeat(widths[column]! - [...cell].length)).join(' │ ')} │`;
  const rule = (left: string, middle: string, right: string) => `${left}${widths.map((width) => '─'.repeat(width + 2)).join(middle)}${right}`;
  return [rule('┌', '┬', '┐'), line(cells[0]!), rule('├', '┼', '┤'), ...cells.slice(1).map(line), rule('└', '┴', '┘')].join('\n');
}

function truncate(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}

/** The demo's terminal output: progress bars (cli-progress) and tables (cli-table3). */
import { SingleBar } from 'cli-progress';
import Table from 'cli-table3';

/** Not a terminal (a log, a test, CI): a line every this often while a job runs, and its last line. */
const LOG_EVERY_MS = 10_000;

/**
 * A labelled 0–100% bar redrawn in place on a terminal, or printed as plain lines to a log. The
 * cursor stays visible and no signal handler is installed, so Ctrl-C stops the demo at once.
 */
export class ProgressBar {
  private readonly bar: SingleBar;
  private started = false;

  constructor(label: string, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout) {
    const terminal = stream.isTTY === true;
    this.bar = new SingleBar({
      format: `${label.padEnd(10)} [{bar}] {percentage}% {detail}`,
      barsize: 30,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      stream,
      noTTYOutput: true,
      notTTYSchedule: LOG_EVERY_MS,
      // Off a terminal each drawn line already ends in a newline; the one cli-progress adds on stop would be blank.
      clearOnComplete: !terminal,
    });
  }

  update(percent: number, detail = ''): void {
    const value = Math.max(0, Math.min(100, percent));
    if (this.started) {
      this.bar.update(value, { detail });
    } else {
      this.started = true;
      this.bar.start(100, value, { detail });
    }
  }

  done(detail: string): void {
    this.update(100, detail);
    this.bar.stop();
  }
}

/** Rows as a boxed table; a column whose cells run past `maxWidth` characters wraps at that width. */
export function table(header: string[], rows: string[][], maxWidth = 48): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => cell.replace(/\s+/g, ' ')));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => [...(row[column] ?? '')].length)));
  const output = new Table({
    head: cells[0],
    // A width only where the column is too wide; cli-table3 sizes the others to their content (+2 for padding).
    colWidths: widths.map((width) => (width > maxWidth ? maxWidth + 2 : null)),
    wordWrap: true,
    style: { head: [], border: [] },
  });
  output.push(...cells.slice(1));
  return output.toString();
}

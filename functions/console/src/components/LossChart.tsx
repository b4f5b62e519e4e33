import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { MetricsRow } from '../types.ts';

const HEIGHT = 280;

/** Columns as uPlot takes them; a loss that is not positive has no place on a log axis. */
function columns(rows: MetricsRow[]): uPlot.AlignedData {
  return [rows.map((row) => row.iter), rows.map((row) => (row.loss > 0 ? row.loss : null)), rows.map((row) => row.lr ?? null)];
}

function options(title: string, unit: string, width: number): uPlot.Options {
  return {
    title,
    width,
    height: HEIGHT,
    scales: { x: { time: false }, loss: { distr: 3 }, lr: {} },
    axes: [
      { label: unit },
      { scale: 'loss', label: 'loss (log scale)' },
      { scale: 'lr', label: 'learning rate', side: 1, grid: { show: false }, values: (_chart, ticks) => ticks.map((tick) => tick.toExponential(1)), size: 70 },
    ],
    series: [
      { label: unit },
      { label: 'loss', scale: 'loss', stroke: '#1d4ed8', width: 2, points: { show: true, size: 5 } },
      { label: 'learning rate', scale: 'lr', stroke: '#b45309', width: 1.5, dash: [6, 4] },
    ],
  };
}

/**
 * The loss per iteration (a bake's) or per `unit` (a training run's optimizer steps) on a log
 * axis with the learning rate on a second axis (uPlot, on a canvas); new rows are drawn in place
 * as they are logged.
 */
export function LossChart({ title, rows, unit = 'iteration' }: { title: string; rows: MetricsRow[]; unit?: string }) {
  const holder = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);

  useEffect(() => {
    const element = holder.current!;
    chart.current = new uPlot(options(title, unit, element.clientWidth || 600), columns(rows), element);
    const resize = new ResizeObserver(() => chart.current?.setSize({ width: element.clientWidth, height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, [title, unit]);

  useEffect(() => {
    chart.current?.setData(columns(rows));
  }, [rows]);

  const first = rows[0];
  const last = rows.at(-1);
  const summary =
    first && last
      ? `Loss chart: ${rows.length} ${unit}s, loss ${first.loss.toPrecision(3)} at ${unit} ${first.iter} to ${last.loss.toPrecision(3)} at ${unit} ${last.iter}`
      : `Loss chart: no ${unit}s logged yet`;
  return <figure class="chart" ref={holder} role="img" aria-label={summary} data-points={rows.length} />;
}

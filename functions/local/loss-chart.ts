/**
 * A bake's loss curve as a picture people can read: a Vega-Lite chart (titled with the bake,
 * labelled axes with tick values, the learning rate on its own right-hand axis) rendered to SVG
 * by Vega on the server and rasterised to PNG by resvg.
 */
import { createRequire } from 'node:module';
import { Resvg } from '@resvg/resvg-js';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { z } from 'zod';
import type { MetricsRow } from '#schemas/job-spec.ts';

export type LossPoint = Pick<z.infer<typeof MetricsRow>, 'iter' | 'loss' | 'lr'>;

export interface LossChartOptions {
  /** The bake's name, shown in the title. */
  bake: string;
  /** Size of the whole chart in CSS pixels; the PNG has `scale` times as many. */
  width?: number;
  height?: number;
  scale?: number;
}

const LOSS_COLOR = '#2563eb';
const LR_COLOR = '#ea580c';
// The chart's text is set in Inter, shipped as TTF in an npm package, so the PNG reads the same on a
// machine with no fonts installed (resvg draws no text without one) as on a desktop.
const FONT = 'Inter';
const resolvePackageFile = createRequire(import.meta.url).resolve;
const FONT_FILES = [resolvePackageFile('@expo-google-fonts/inter/400Regular/Inter_400Regular.ttf'), resolvePackageFile('@expo-google-fonts/inter/700Bold/Inter_700Bold.ttf')];

/** The Vega-Lite spec of the chart: loss per iteration, and the learning rate when the rows carry it. */
export function lossCurveSpec(points: LossPoint[], options: LossChartOptions): TopLevelSpec {
  // A log scale cannot place a loss of zero or below, and a NaN has no place on any scale.
  const rows = points.filter((point) => Number.isFinite(point.loss) && point.loss > 0);
  const losses = rows.map((point) => point.loss);
  // KL losses fall by decades, which a linear axis flattens into the floor after the first steps.
  const log = losses.length > 0 && Math.max(...losses) / Math.min(...losses) > 10;
  const withLr = rows.some((point) => point.lr !== undefined && Number.isFinite(point.lr));
  const iteration = { field: 'iter', type: 'quantitative', title: 'iteration', axis: { tickMinStep: 1 }, scale: { nice: false } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Bake ${options.bake}: loss per iteration`,
      subtitle: rows.length === 0 ? 'no iterations logged yet' : `${rows.length} iterations, final loss ${losses.at(-1)!.toPrecision(3)}`,
    },
    width: options.width ?? 720,
    height: options.height ?? 360,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'white',
    config: { font: FONT, axis: { labelFontSize: 11, titleFontSize: 12 }, title: { fontSize: 15 } },
    data: { values: rows },
    layer: [
      {
        mark: { type: 'line', color: LOSS_COLOR, strokeWidth: 2, point: rows.length === 1 },
        encoding: {
          x: iteration,
          y: {
            field: 'loss',
            type: 'quantitative',
            title: log ? 'loss (log scale)' : 'loss',
            scale: log ? { type: 'log' } : { zero: false },
            axis: { titleColor: LOSS_COLOR, grid: true },
          },
        },
      },
      ...(withLr
        ? [
            {
              mark: { type: 'line' as const, color: LR_COLOR, strokeWidth: 1.5, strokeDash: [6, 4] },
              encoding: {
                x: iteration,
                y: {
                  field: 'lr',
                  type: 'quantitative' as const,
                  title: 'learning rate',
                  axis: { orient: 'right' as const, titleColor: LR_COLOR, format: '.1e', grid: false },
                },
              },
            },
          ]
        : []),
    ],
    resolve: { scale: { y: 'independent' } },
  };
}

/** The chart as an SVG document. */
export async function lossCurveSvg(points: LossPoint[], options: LossChartOptions): Promise<string> {
  const view = new View(parse(compile(lossCurveSpec(points, options)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The chart as SVG and as PNG. */
export async function lossCurve(points: LossPoint[], options: LossChartOptions): Promise<{ svg: string; png: Buffer }> {
  const svg = await lossCurveSvg(points, options);
  const png = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: options.scale ?? 2 },
    font: { fontFiles: FONT_FILES, loadSystemFonts: false, defaultFontFamily: FONT },
  })
    .render()
    .asPng();
  return { svg, png };
}

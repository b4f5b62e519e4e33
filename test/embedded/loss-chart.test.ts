import { PNG } from 'pngjs';
import { compile } from 'vega-lite';
import { describe, expect, it } from 'vitest';
import { type LossPoint, lossCurve, lossCurveSpec, lossCurveSvg } from '#local/loss-chart.ts';

/** A bake's rows as the engine logs them: a KL loss falling by decades under a linearly decaying learning rate. */
const rows: LossPoint[] = Array.from({ length: 36 }, (_, i) => ({ iter: i + 1, loss: 1.3 * 10 ** (-i / 10), lr: 0.002 * (1 - i / 36) }));

/** Pixels in a band of rows that are clearly darker than the white background: drawn text or lines. */
function inkIn(png: PNG, top: number, bottom: number): number {
  let ink = 0;
  for (let y = top; y < bottom; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      if (png.data[i]! + png.data[i + 1]! + png.data[i + 2]! < 3 * 160) ink++;
    }
  }
  return ink;
}

describe('the loss curve chart', () => {
  it('titles the chart with the bake, labels both axes, marks the log scale and puts the learning rate on its own axis', () => {
    const spec = lossCurveSpec(rows, { bake: 'uppercase_bake' });
    const vega = compile(spec).spec;
    const axes = (vega.axes ?? []).filter((axis) => axis.title !== undefined);
    expect(axes.map((axis) => [axis.title, axis.orient])).toEqual(
      expect.arrayContaining([
        ['iteration', 'bottom'],
        ['loss (log scale)', 'left'],
        ['learning rate', 'right'],
      ]),
    );
    const scales = Object.fromEntries((vega.scales ?? []).map((scale) => [scale.name, scale.type]));
    expect(Object.values(scales)).toContain('log');
    expect(Object.keys(scales).length).toBe(3); // x, loss and learning rate each on their own scale
    expect(JSON.stringify(vega.title)).toContain('uppercase_bake');
  });

  it('keeps a linear loss axis, titled plainly, when the loss spans less than a decade, and no second axis without learning rates', () => {
    const flat = rows.slice(0, 5).map(({ iter }) => ({ iter, loss: 2 - iter / 10 }));
    const vega = compile(lossCurveSpec(flat, { bake: 'flat' })).spec;
    const titles = (vega.axes ?? []).map((axis) => axis.title).filter(Boolean);
    expect(titles).toEqual(expect.arrayContaining(['iteration', 'loss']));
    expect(titles).not.toContain('learning rate');
    expect((vega.scales ?? []).map((scale) => scale.type)).not.toContain('log');
  });

  it('leaves out losses a log scale cannot place and says when nothing was logged', async () => {
    const spec = lossCurveSpec([{ iter: 1, loss: 0 }, { iter: 2, loss: Number.NaN }, { iter: 3, loss: 0.5 }], { bake: 'b' });
    expect((spec as { data: { values: LossPoint[] } }).data.values).toEqual([{ iter: 3, loss: 0.5 }]);
    expect(await lossCurveSvg([], { bake: 'empty_bake' })).toContain('no iterations logged yet');
  });

  it('writes the title, axis titles and tick values into the SVG', async () => {
    const svg = await lossCurveSvg(rows, { bake: 'uppercase_bake' });
    for (const text of ['Bake uppercase_bake: loss per iteration', 'iteration', 'loss (log scale)', 'learning rate', '>0.001<', '>2.0e-3<']) {
      expect(svg).toContain(text);
    }
  });

  it('rasterises to a PNG of the requested size with its text and lines drawn', async () => {
    const { png } = await lossCurve(rows, { bake: 'uppercase_bake', width: 600, height: 300, scale: 2 });
    const image = PNG.sync.read(png);
    expect([image.width, image.height]).toEqual([1200, 600]);
    // The title sits in the top band, above the plot: ink there is rendered text, which needs a loaded font.
    expect(inkIn(image, 0, 40)).toBeGreaterThan(1500);
    // A blank chart (no rows) still draws axes but no curve: the curves add ink to the plot area.
    const blank = PNG.sync.read((await lossCurve([], { bake: 'uppercase_bake', width: 600, height: 300, scale: 2 })).png);
    expect(inkIn(image, 120, 520)).toBeGreaterThan(inkIn(blank, 120, 520) + 1000);
  });
});

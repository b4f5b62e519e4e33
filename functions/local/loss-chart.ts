import { crc32, deflateSync } from 'node:zlib';

/**
 * Draws a bake's loss curve as a PNG (no dependencies): loss against iteration on a light grid,
 * the y axis on a log scale when the loss spans more than a decade, as KL losses usually do.
 */
export function lossCurvePng(points: { iter: number; loss: number }[], width = 720, height = 360): Buffer {
  const canvas = new Canvas(width, height);
  const margin = { left: 20, right: 20, top: 20, bottom: 20 };
  const plot = { x0: margin.left, y0: margin.top, x1: width - margin.right, y1: height - margin.bottom };
  canvas.rect(plot.x0, plot.y0, plot.x1, plot.y1, [250, 250, 250]);
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(plot.y0 + ((plot.y1 - plot.y0) * i) / 4);
    canvas.line(plot.x0, y, plot.x1, y, [225, 225, 225]);
  }
  canvas.line(plot.x0, plot.y1, plot.x1, plot.y1, [120, 120, 120]);
  canvas.line(plot.x0, plot.y0, plot.x0, plot.y1, [120, 120, 120]);

  const finite = points.filter((point) => Number.isFinite(point.loss) && point.loss > 0);
  if (finite.length > 0) {
    const losses = finite.map((point) => point.loss);
    const log = Math.max(...losses) / Math.min(...losses) > 10;
    const scale = (loss: number) => (log ? Math.log10(loss) : loss);
    const [lo, hi] = [Math.min(...losses.map(scale)), Math.max(...losses.map(scale))];
    const [first, last] = [finite[0]!.iter, finite.at(-1)!.iter];
    const px = (iter: number) => plot.x0 + ((plot.x1 - plot.x0) * (iter - first)) / Math.max(1, last - first);
    const py = (loss: number) => plot.y1 - ((plot.y1 - plot.y0) * (scale(loss) - lo)) / Math.max(1e-12, hi - lo);
    for (let i = 1; i < finite.length; i++) {
      const [a, b] = [finite[i - 1]!, finite[i]!];
      canvas.line(px(a.iter), py(a.loss), px(b.iter), py(b.loss), [37, 99, 235], 2);
    }
    if (finite.length === 1) canvas.rect(px(first) - 2, py(losses[0]!) - 2, px(first) + 2, py(losses[0]!) + 2, [37, 99, 235]);
  }
  return canvas.png();
}

type Rgb = [number, number, number];

class Canvas {
  private readonly pixels: Buffer;

  constructor(
    private readonly width: number,
    private readonly height: number,
  ) {
    this.pixels = Buffer.alloc(width * height * 3, 255);
  }

  rect(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    for (let y = Math.max(0, Math.round(y0)); y <= Math.min(this.height - 1, Math.round(y1)); y++) {
      for (let x = Math.max(0, Math.round(x0)); x <= Math.min(this.width - 1, Math.round(x1)); x++) this.set(x, y, color);
    }
  }

  /** A straight line, stepped finely enough to leave no gaps. */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0)) * 2));
    const half = Math.floor(thickness / 2);
    for (let i = 0; i <= steps; i++) {
      const x = Math.round(x0 + ((x1 - x0) * i) / steps);
      const y = Math.round(y0 + ((y1 - y0) * i) / steps);
      this.rect(x - half, y - half, x - half + thickness - 1, y - half + thickness - 1, color);
    }
  }

  png(): Buffer {
    const rows = Buffer.alloc((this.width * 3 + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      rows[y * (this.width * 3 + 1)] = 0; // filter: none
      this.pixels.copy(rows, y * (this.width * 3 + 1) + 1, y * this.width * 3, (y + 1) * this.width * 3);
    }
    const header = Buffer.alloc(13);
    header.writeUInt32BE(this.width, 0);
    header.writeUInt32BE(this.height, 4);
    header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', header),
      chunk('IDAT', deflateSync(rows)),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }

  private set(x: number, y: number, [r, g, b]: Rgb): void {
    const offset = (y * this.width + x) * 3;
    this.pixels[offset] = r;
    this.pixels[offset + 1] = g;
    this.pixels[offset + 2] = b;
  }
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

import { ValidationError } from '#core/errors.ts';

/**
 * A sparse CSR tensor, as the Tinker SDK sends sparse targets in JSON and in protobuf, expanded
 * to the dense row-major values of its two-dimensional `shape`. ValidationError (naming `what`)
 * when the indices do not describe such a tensor.
 */
export function denseFromCsr<V>(shape: number[], values: V[], rowStarts: number[], cols: number[], what: string): (V | number)[] {
  if (shape.length !== 2) throw new ValidationError(`${what}: a sparse CSR tensor needs a two-dimensional shape, not [${shape.join(', ')}].`);
  const [rows, columns] = shape as [number, number];
  const consistent =
    rowStarts.length === rows + 1 &&
    rowStarts[0] === 0 &&
    rowStarts[rows] === values.length &&
    cols.length === values.length &&
    rowStarts.every((start, row) => row === 0 || start >= rowStarts[row - 1]!) &&
    cols.every((col) => col >= 0 && col < columns);
  if (!consistent) throw new ValidationError(`${what}: the sparse CSR indices do not describe a ${rows}×${columns} tensor with ${values.length} values.`);
  const dense = new Array<V | number>(rows * columns).fill(0);
  for (let row = 0; row < rows; row++) {
    for (let at = rowStarts[row]!; at < rowStarts[row + 1]!; at++) dense[row * columns + cols[at]!] = values[at]!;
  }
  return dense;
}

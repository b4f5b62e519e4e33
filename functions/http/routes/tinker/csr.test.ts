import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors.ts';
import { denseFromCsr } from './csr.ts';

describe('denseFromCsr', () => {
  it('expands a CSR tensor to its dense rows, zero where no value is given', () => {
    expect(denseFromCsr([2, 3], [5, 7, 9], [0, 1, 3], [2, 0, 1], 'x')).toEqual([0, 0, 5, 7, 9, 0]);
  });

  it('refuses indices that do not describe the shape, naming the tensor', () => {
    const refused = (shape: number[], rowStarts: number[], cols: number[]) => () => denseFromCsr(shape, [1, 2], rowStarts, cols, 'data.0.weights');
    expect(refused([2, 3], [0, 1, 3], [0, 1])).toThrow(new ValidationError('data.0.weights: the sparse CSR indices do not describe a 2×3 tensor with 2 values.'));
    expect(refused([2, 3], [1, 1, 2], [0, 1])).toThrow(ValidationError); // not starting at 0
    expect(refused([2, 3], [0, 2, 1], [0, 1])).toThrow(ValidationError); // rows going backwards
    expect(refused([2, 3], [0, 1, 2], [0, 3])).toThrow(ValidationError); // a column outside the shape
    expect(refused([4], [0, 2], [0, 1])).toThrow(new ValidationError('data.0.weights: a sparse CSR tensor needs a two-dimensional shape, not [4].'));
  });
});

import { describe, expect, it } from 'vitest';
import { tooDeepAt } from './json-depth.ts';

describe('tooDeepAt', () => {
  it('passes text at the limit and names the path one level past it', () => {
    expect(tooDeepAt('{"a":[{"b":1}]}', 3)).toBeUndefined();
    expect(tooDeepAt('{"a":[{"b":1}]}', 2)).toEqual(['a', 0]);
  });

  it('counts elements and members to name where the nesting went too deep', () => {
    expect(tooDeepAt('{"x":1,"y":[1,"[",{},[[2]]]}', 3)).toEqual(['y', 3, 0]);
  });

  it('decodes the keys it names', () => {
    expect(tooDeepAt('{"t\\u00e9 \\"q\\"":{"k":{}}}', 2)).toEqual(['té "q"', 'k']);
  });

  it('ignores brackets and quotes inside strings, escaped or not', () => {
    const text = `{"a":"\\\\","b":"\\"${'['.repeat(50)}","c":"\\\\\\"{{{{"}`;
    expect(JSON.parse(text)).toBeTypeOf('object');
    expect(tooDeepAt(text, 1)).toBeUndefined();
  });

  it('measures each of several top-level values (JSON lines) on its own', () => {
    expect(tooDeepAt('{"a":{}}\n{"b":{}}\n', 2)).toBeUndefined();
  });
});

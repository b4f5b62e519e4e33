/**
 * Nesting depth of JSON text, measured before anything parses it. Every later step that walks a
 * body recursively (zod, the template merge, canonical JSON, `JSON.stringify`, the Store) can then
 * rely on a bound instead of overflowing the stack on a hostile body.
 *
 * The scan is one loop over the text with an explicit stack, so it cannot overflow itself; text
 * that is not valid JSON is left for the parser to refuse.
 */

/** Where a container opened deeper than allowed: the keys and indexes leading to it. */
export type JsonPath = (string | number)[];

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/**
 * The path to the first object or array nested deeper than `maxDepth` levels (the top-level
 * value is level 1), or undefined when none is.
 */
export function tooDeepAt(text: string, maxDepth: number): JsonPath | undefined {
  // One entry per open container, for the member or element being read inside it: an array's
  // element index, or where an object's current key starts (-1 before the first). Keys are only
  // decoded for the answer, so a body within the limit costs one pass and no allocations.
  const inArray: boolean[] = [];
  const at: number[] = [];
  let expectingKey = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === QUOTE) {
      if (expectingKey) {
        at[at.length - 1] = i;
        expectingKey = false;
      }
      i = closingQuote(text, i);
    } else if (char === OPEN_OBJECT || char === OPEN_ARRAY) {
      if (at.length === maxDepth) return at.map((where, level) => (inArray[level] ? where : keyAt(text, where)));
      inArray.push(char === OPEN_ARRAY);
      at.push(char === OPEN_ARRAY ? 0 : -1);
      expectingKey = char === OPEN_OBJECT;
    } else if (char === CLOSE_OBJECT || char === CLOSE_ARRAY) {
      inArray.pop();
      at.pop();
      expectingKey = false;
    } else if (char === COMMA && at.length > 0) {
      if (inArray[at.length - 1]) at[at.length - 1]! += 1;
      else expectingKey = true;
    }
  }
  return undefined;
}

/** The index of the quote that ends the string opening at `start` (the text's end if none does). */
function closingQuote(text: string, start: number): number {
  for (let at = text.indexOf('"', start + 1); at !== -1; at = text.indexOf('"', at + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
  return text.length;
}

/** The object key whose quote opens at `start` (empty where none was read). */
function keyAt(text: string, start: number): string {
  if (start < 0) return '';
  const quoted = text.slice(start, closingQuote(text, start) + 1);
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted; // not valid JSON: the parser refuses the body with its own message
  }
}

/**
 * What a `from_dataset` file holds, read by the same rules as the engine
 * (batch/engine/src/bakehouse_engine/stim/from_dataset.py), so that an upload the API accepts is
 * one the engine can sample from, and a bad file is refused at upload with its line number.
 *
 * JSONL: one JSON string, or object with a non-empty `question`, `prompt` or `text` string, per
 * non-blank line. CSV: a header naming one of those columns; rows with it empty are skipped.
 */
import { parse } from 'csv-parse/sync';
import { ValidationError } from './errors.ts';

export type DatasetFormat = 'jsonl' | 'csv';

const QUESTION_FIELDS = ['question', 'prompt', 'text'] as const;
const FIELD_NAMES = QUESTION_FIELDS.map((name) => `'${name}'`).join(' or ');

/** The number of questions in the file; a ValidationError says what is wrong with an unusable one. */
export function countQuestions(bytes: Uint8Array, format: DatasetFormat): number {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ValidationError('The dataset is not UTF-8 text.');
  }
  const count = format === 'csv' ? countCsv(text) : countJsonl(text);
  if (count === 0) throw new ValidationError('The dataset holds no questions.');
  return count;
}

function countJsonl(text: string): number {
  let count = 0;
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new ValidationError(`Line ${index + 1} of the dataset is not valid JSON; send one JSON object per line (JSONL), or CSV as text/csv.`);
    }
    if (!(typeof record === 'string' || hasQuestion(record))) {
      throw new ValidationError(`Line ${index + 1} of the dataset has no ${FIELD_NAMES} string field.`);
    }
    count++;
  });
  return count;
}

function hasQuestion(record: unknown): boolean {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return false;
  return QUESTION_FIELDS.some((name) => {
    const value = (record as Record<string, unknown>)[name];
    return typeof value === 'string' && value.trim() !== '';
  });
}

function countCsv(text: string): number {
  let rows: string[][];
  try {
    rows = parse(text, { relax_column_count: true, skip_empty_lines: true });
  } catch (error) {
    throw new ValidationError(`The dataset is not valid CSV (${(error as Error).message}).`);
  }
  const header = rows[0] ?? [];
  const column = QUESTION_FIELDS.map((name) => header.indexOf(name)).find((index) => index >= 0);
  if (column === undefined) throw new ValidationError(`The dataset's CSV header needs a ${FIELD_NAMES} column.`);
  return rows.slice(1).filter((row) => (row[column] ?? '').trim() !== '').length;
}

import { afterEach, describe, expect, it, vi } from 'vitest';
import { NotFoundError } from '#core/errors.ts';
import { INTERNAL_TOOL_ERROR, toolResult } from './tool-result.ts';

afterEach(() => vi.restoreAllMocks());

describe('toolResult', () => {
  it('answers a value as JSON text and as structured content', async () => {
    const value = { repo_name: 'r', base_model: 'm' };
    expect(await toolResult('get_repo', async () => value)).toEqual({ content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value });
  });

  it("answers a domain error as a tool error with the API's sentence", async () => {
    const result = await toolResult('get_repo', async () => {
      throw new NotFoundError("Repo 'r' not found");
    });
    expect(result).toEqual({ isError: true, content: [{ type: 'text', text: "Repo 'r' not found" }] });
  });

  it('answers an unexpected error with a generic sentence and logs the detail', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    const result = await toolResult('get_repo', async () => {
      throw new Error('SQLITE_BUSY at /srv/data/bakehouse.db');
    });
    expect(result).toEqual({ isError: true, content: [{ type: 'text', text: INTERNAL_TOOL_ERROR }] });
    expect(JSON.stringify(result)).not.toContain('SQLITE_BUSY');
    expect(log.mock.calls[0]?.[0]).toContain('SQLITE_BUSY');
  });
});

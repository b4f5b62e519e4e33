import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { DomainError } from '#core/errors.ts';

/** Said for a failure that is not the API's own: the detail goes to the log, never to the caller. */
export const INTERNAL_TOOL_ERROR = 'The tool failed on an internal error; try again, and report it if it keeps failing.';

/**
 * Runs a tool's service call and answers as MCP expects: the value as JSON text (and as structured
 * content), or a tool error carrying the API's own sentence, so an assistant can read it and act.
 */
export async function toolResult(tool: string, call: () => Promise<unknown>): Promise<CallToolResult> {
  try {
    const value = (await call()) as Record<string, unknown>;
    return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
  } catch (error) {
    if (error instanceof DomainError) return { isError: true, content: [{ type: 'text', text: error.message }] };
    console.error(JSON.stringify({ level: 'error', msg: 'mcp tool failed', tool, error: String((error as Error).stack ?? error) }));
    return { isError: true, content: [{ type: 'text', text: INTERNAL_TOOL_ERROR }] };
  }
}

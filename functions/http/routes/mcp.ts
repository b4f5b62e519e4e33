import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Actor } from '#core/actor.ts';
import type { Services } from '#core/services.ts';
import { toolResult } from '../mcp/tool-result.ts';
import { mcpTools, type McpTool } from '../mcp/tools.ts';
import type { App } from '../openapi.ts';
import { wholeReply, type ChatRouteOptions } from './chat.ts';
import { API_VERSION } from './health.ts';

export const MCP_PATH = '/mcp';

/**
 * The MCP server (streamable HTTP) over the same services as the Bread routes. Stateless: each
 * POST gets its own server and transport bound to the caller's actor, and answers with one JSON
 * body rather than an SSE stream, so it runs alike on the embedded server and behind Lambda's
 * buffered responses. GET (a server-to-client stream) is left unrouted: the router answers 405,
 * which MCP clients take as "no stream offered".
 */
export function mcpRoutes(app: App, services: Services, chatOptions: ChatRouteOptions): void {
  app.post(MCP_PATH, async (c) => {
    const relayUrl = chatOptions.relayUrl ?? new URL(c.req.url).origin;
    const tools = mcpTools({
      services,
      chat: async (actor, body) => wholeReply(services, await services.chat.submit(actor, body, relayUrl)),
    });
    const server = mcpServer(tools, c.get('actor'));
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw);
    } finally {
      await server.close();
    }
  });
}

function mcpServer(tools: McpTool[], actor: Actor): McpServer {
  const server = new McpServer({ name: 'bakehouse', version: API_VERSION });
  for (const tool of tools) {
    // A derived copy drops the OpenAPI component id (`.meta({ id })`), which would turn the
    // tool's JSON Schema into a bare `$ref`; MCP wants an object schema at the top.
    const inputSchema = tool.input.extend({});
    server.registerTool(
      tool.name,
      { description: tool.description, inputSchema, annotations: { readOnlyHint: tool.readOnly } },
      (args: unknown) => toolResult(tool.name, () => tool.run(actor, args as never)),
    );
  }
  return server;
}

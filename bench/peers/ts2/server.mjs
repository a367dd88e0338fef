// Benchmark peer: the official TypeScript SDK v2 (@modelcontextprotocol/server 2.4.0) serving one
// `echo` tool over Streamable HTTP, in the shape its docs give for plain node:http
// (docs/serving/http.md "Mount it on your runtime", also the @modelcontextprotocol/node README):
// createMcpHandler(factory) -> toNodeHandler -> node:http, behind the localhost Host/Origin guards,
// bound to 127.0.0.1.
//
//   PORT=8080 node bench/peers/ts2/server.mjs      (Node 22: $MCPT_NODE22)
//
// createMcpHandler on its default posture (legacy: 'stateless', responseMode: 'auto'), as in the
// SDK's stateless-legacy/ and dual-era/ examples: protocol 2026-07-28 requests (the per-request
// `_meta` envelope) are served per request; 2025-era requests (initialize, ...) are served
// statelessly by a fresh instance from the same factory, with no session id (legacy GET/DELETE
// answer 405). The factory runs once per HTTP request in both eras.
//
// TCP_NODELAY: Node's http.Server defaults to noDelay: true, so every accepted socket has it.
import { createServer } from 'node:http';
import * as z from 'zod/v4';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { localhostHostValidation, localhostOriginValidation, toNodeHandler } from '@modelcontextprotocol/node';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set to a port number');
  process.exit(2);
}

const handler = createMcpHandler(() => {
  const server = new McpServer({ name: 'ts2-echo', version: '0.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echo a message back', inputSchema: z.object({ message: z.string() }) },
    async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }),
  );
  return server;
});

const nodeHandler = toNodeHandler(handler);
const validateHost = localhostHostValidation();
const validateOrigin = localhostOriginValidation();

createServer((req, res) => {
  if (!validateHost(req, res) || !validateOrigin(req, res)) return;
  // Only /mcp is the endpoint; the docs' mount serves every path, this peer answers others 404.
  if (req.url !== '/mcp' && !req.url.startsWith('/mcp?')) {
    res.writeHead(404).end();
    return;
  }
  void nodeHandler(req, res);
}).listen(port, '127.0.0.1', () => {
  console.error(`ts2-echo (@modelcontextprotocol/server 2.4.0, node ${process.version}) listening on http://127.0.0.1:${port}/mcp`);
});

// Benchmark peer: the official TypeScript SDK (v1.x) serving one `echo` tool over Streamable
// HTTP, stateful, in the shape of the SDK's own stateful express example: one transport +
// McpServer per session, kept in a map keyed by the session id.
//
//   PORT=8080 node bench/peers/ts/server.mjs      (Node 22: $MCPT_NODE22)
//
// TCP_NODELAY: Node's http.Server defaults to noDelay: true (which app.listen uses), so every
// accepted socket already has it; nothing to set here.
import { randomUUID } from 'node:crypto';
import express from 'express';
import * as z from 'zod/v4';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set to a port number');
  process.exit(2);
}

function newServer() {
  const server = new McpServer({ name: 'ts-echo', version: '0.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echo a message back', inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }),
  );
  return server;
}

const transports = new Map(); // session id -> StreamableHTTPServerTransport

const app = express();
app.use(express.json());

app.post('/mcp', async (req, res) => {
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    if (sid || !isInitializeRequest(req.body)) {
      // Unknown session (404, so clients re-initialize) or no session at all (400).
      res.status(sid ? 404 : 400).json({
        jsonrpc: '2.0',
        error: { code: sid ? -32001 : -32000, message: sid ? 'Session not found' : 'Bad Request: no valid session ID' },
        id: null,
      });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    // Fires on DELETE (transport.close()), so the map never outlives its sessions.
    transport.onclose = () => {
      if (transport.sessionId) transports.delete(transport.sessionId);
    };
    await newServer().connect(transport);
  }
  await transport.handleRequest(req, res, req.body);
});

// GET (standalone SSE stream) and DELETE (end session) need an existing session.
const bySession = async (req, res) => {
  const transport = transports.get(req.headers['mcp-session-id']);
  if (!transport) {
    res.status(req.headers['mcp-session-id'] ? 404 : 400).send('Invalid or missing session ID');
    return;
  }
  await transport.handleRequest(req, res);
};
app.get('/mcp', bySession);
app.delete('/mcp', bySession);

app.listen(port, '127.0.0.1', (err) => {
  if (err) throw err;
  console.error(`ts-echo (@modelcontextprotocol/sdk 1.32.2, node ${process.version}) listening on http://127.0.0.1:${port}/mcp`);
});

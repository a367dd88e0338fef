// Long-running official TypeScript SDK 2.x client (@modelcontextprotocol/client 2.4.0) in protocol
// 2026-07-28 for tests/cluster/rolling-restart-clients.sh: it negotiates with
// `versionNegotiation: { mode: 'auto' }`, keeps a `subscriptions/listen` stream open, and calls
// `echo` (every 10th call `node_info`) every ~20 ms until STOPFILE exists or MAX_SECONDS pass.
// Node's fetch keeps no cookies: behind Traefik every request goes round-robin, to any node.
//
//   $MCPT_NODE22 tests/cluster/ts-modern-loop.mjs URL NAME STOPFILE [MAX_SECONDS]
//
// A call that throws, returns isError, returns the wrong text or exceeds the per-call timeout is
// one failure. A listen stream that the server ends with its completion result (a drain) counts
// as `listen_completed` and is opened again; one that ends without it counts as `listen_lost`.
// Output (stdout):
//   stateless 2026-07-28                once, after connecting
//   FAIL <iso time> +<ms> #<n> <tool>: <error>    the first 20 failures
//   INFO ...                            HTTP status counts, listen stream ends
//   <NAME>: requests=N failures=M longest_gap_ms=G session_changed=no nodes=n1,n2 listen_completed=C listen_lost=L listen_refused=R
// (listen_refused: opening a listen stream failed, e.g. 503 from a draining node; it is retried.)
// Env: MCPT_LOOP_INTERVAL_MS (20), MCPT_CALL_TIMEOUT_MS (10000), MCPT_NODE_MODULES.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const [url, NAME = 'ts-modern', stopFile = '', maxArg = '180'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node ts-modern-loop.mjs URL NAME STOPFILE [MAX_SECONDS]');
  process.exit(2);
}
const MAX_MS = Number(maxArg) * 1000;
const INTERVAL_MS = Number(process.env.MCPT_LOOP_INTERVAL_MS || 20);
const CALL_TIMEOUT_MS = Number(process.env.MCPT_CALL_TIMEOUT_MS || 10_000);
const MAX_FAIL_LINES = 20;
const summary = (requests, failures, gap, nodes, done, lost, refused) =>
  `${NAME}: requests=${requests} failures=${failures} longest_gap_ms=${gap} session_changed=no nodes=${nodes} listen_completed=${done} listen_lost=${lost} listen_refused=${refused}`;

const nodeModules =
  process.env.MCPT_NODE_MODULES ||
  path.join(process.env.MCPT_TEST_DEPS || path.join(os.homedir(), '.cache', 'mcpd-test-deps'), 'node', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
let sdk;
try {
  sdk = require('@modelcontextprotocol/client');
} catch (e) {
  console.log(`FAIL ${new Date().toISOString()} +0 #0 load: cannot load @modelcontextprotocol/client from ${nodeModules}: ${e.message}`);
  console.log(summary(0, 1, 0, '', 0, 0, 0));
  process.exit(0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
const oneLine = (s) => String(s).replace(/\s+/g, ' ').slice(0, 300);

const t0 = Date.now();
const statusCount = new Map();
const bump = (k) => statusCount.set(k, (statusCount.get(k) || 0) + 1);
let sessionSeen = '';
async function tapFetch(input, init = {}) {
  const h = new Headers(init.headers || {});
  const key = `${(init.method || 'GET').toUpperCase()} ${h.get('mcp-method') || '-'}`;
  if (h.get('mcp-session-id')) sessionSeen = h.get('mcp-session-id');
  let res;
  try {
    res = await fetch(input, init);
  } catch (e) {
    bump(`${key} error`);
    throw e;
  }
  bump(`${key} ${res.status}`);
  return res;
}

let requests = 0;
let failures = 0;
let longestGap = 0;
const nodes = new Set();
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });
const done = () => stopping || Date.now() - t0 >= MAX_MS || (stopFile && existsSync(stopFile));

function fail(n, tool, err) {
  failures++;
  if (failures <= MAX_FAIL_LINES) {
    console.log(`FAIL ${new Date().toISOString()} +${Date.now() - t0}ms #${n} ${tool}: ${oneLine(err)}`);
  } else if (failures === MAX_FAIL_LINES + 1) {
    console.log('FAIL (further failures are counted, not printed)');
  }
}

const client = new sdk.Client(
  { name: `mcpd-${NAME}`, version: '1.0.0' },
  { capabilities: {}, versionNegotiation: { mode: 'auto' } },
);
client.onerror = () => {};
const transport = new sdk.StreamableHTTPClientTransport(new URL(url), { fetch: tapFetch });

let connected = false;
try {
  await withTimeout(client.connect(transport, { timeout: CALL_TIMEOUT_MS }), CALL_TIMEOUT_MS + 1000, 'connect');
  connected = client.getProtocolEra() === 'modern';
  if (connected) console.log(`stateless ${client.getNegotiatedProtocolVersion()}`);
  else fail(0, 'connect', `negotiated ${client.getProtocolEra()} ${client.getNegotiatedProtocolVersion()}`);
} catch (e) {
  fail(0, 'connect', e?.message ?? e);
}

// The listen stream, reopened whenever it ends while the loop runs.
let listenCompleted = 0;
let listenLost = 0;
let listenRefused = 0;
let listenOpens = 0;
let current;
async function listenLoop() {
  while (connected && !done()) {
    try {
      current = await withTimeout(client.listen({ resourceSubscriptions: ['mcpd://node'] }), CALL_TIMEOUT_MS, 'listen');
      listenOpens++;
      const how = await current.closed;
      if (done()) break;
      if (how === 'graceful') listenCompleted++;
      else {
        listenLost++;
        console.log(`INFO listen stream ended without its completion result (${how}) at +${Date.now() - t0}ms`);
      }
    } catch (e) {
      if (done()) break;
      listenRefused++;
      console.log(`INFO listen refused at +${Date.now() - t0}ms: ${oneLine(e?.message ?? e)}`);
      await sleep(200);
    }
  }
}
const listening = listenLoop();

let lastOk = Date.now();
if (connected) {
  for (let n = 1; !done(); n++) {
    const tool = n % 10 === 0 ? 'node_info' : 'echo';
    const message = `${NAME}-${n}`;
    requests++;
    try {
      const r = await withTimeout(
        client.callTool({ name: tool, arguments: tool === 'echo' ? { message } : {} }, { timeout: CALL_TIMEOUT_MS }),
        CALL_TIMEOUT_MS + 1000,
        `${tool} call`,
      );
      if (r.isError) throw new Error(`isError result: ${JSON.stringify(r.content)}`);
      const text = (r.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
      if (tool === 'echo') {
        if (text !== `Echo: ${message}`) throw new Error(`wrong echo text ${JSON.stringify(text)}`);
      } else {
        const node = r.structuredContent?.node;
        if (typeof node !== 'string' || !node) throw new Error(`node_info without a node id: ${text}`);
        nodes.add(node);
      }
      const now = Date.now();
      longestGap = Math.max(longestGap, now - lastOk);
      lastOk = now;
    } catch (e) {
      fail(n, tool, e?.message ?? e);
    }
    await sleep(INTERVAL_MS);
  }
}
if (requests > 0) longestGap = Math.max(longestGap, Date.now() - lastOk);
try {
  if (current) await withTimeout(current.close(), 2000, 'listen close');
} catch {}
await withTimeout(listening, 3000, 'listen loop').catch(() => {});
if (sessionSeen) fail(requests, 'wire', `a 2026-07-28 client sent Mcp-Session-Id ${sessionSeen}`);
const counts = [...statusCount.entries()].sort().map(([k, v]) => `${k}=${v}`).join(' ');
console.log(`INFO http: ${counts}`);
console.log(`INFO listen streams opened: ${listenOpens}`);
console.log(summary(requests, failures, longestGap, [...nodes].sort().join(','), listenCompleted, listenLost, listenRefused));
try {
  await withTimeout(client.close(), 2000, 'close');
} catch {}
process.exit(0);

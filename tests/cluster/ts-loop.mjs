// Long-running official TypeScript SDK client for tests/cluster/rolling-restart-clients.sh:
// initializes ONE session, then calls `echo` (and every 10th call `node_info`) every ~20 ms
// until STOPFILE exists or MAX_SECONDS pass. It never re-initializes and never retries: a call
// that throws, returns isError, returns the wrong text or exceeds the per-call timeout is one
// failure, and the loop goes on with the same client and transport.
//
//   $MCPT_NODE22 tests/cluster/ts-loop.mjs URL NAME STOPFILE [MAX_SECONDS]
//
// Node's fetch keeps no cookies, so behind Traefik every request is round-robined.
// Output (stdout):
//   session <id>                       once, after initialize
//   FAIL <iso time> +<ms> #<n> <tool>: <error>    the first 20 failures
//   INFO ...                           HTTP status counts, GET stream (re)opens, SDK onerror
//   <NAME>: requests=N failures=M longest_gap_ms=G session_changed=no|yes nodes=n1,n2
// longest_gap_ms: the longest wall-clock time without a successful call: between two consecutive
// successes, from the loop start to the first one, and from the last one to the loop's end (so a
// session lost for good shows as a long gap). Exits 0 once the summary is printed; the caller judges.
// Env: MCPT_LOOP_INTERVAL_MS (20), MCPT_CALL_TIMEOUT_MS (10000), MCPT_NODE_MODULES.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const [url, NAME = 'ts-loop', stopFile = '', maxArg = '180'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node ts-loop.mjs URL NAME STOPFILE [MAX_SECONDS]');
  process.exit(2);
}
const MAX_MS = Number(maxArg) * 1000;
const INTERVAL_MS = Number(process.env.MCPT_LOOP_INTERVAL_MS || 20);
const CALL_TIMEOUT_MS = Number(process.env.MCPT_CALL_TIMEOUT_MS || 10_000);
const MAX_FAIL_LINES = 20;
const MAX_GET_LINES = 30;

const nodeModules =
  process.env.MCPT_NODE_MODULES ||
  path.join(process.env.MCPT_TEST_DEPS || path.join(os.homedir(), '.cache', 'mcpd-test-deps'), 'node', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
let sdk;
try {
  sdk = {
    ...require('@modelcontextprotocol/sdk/client/index.js'),
    ...require('@modelcontextprotocol/sdk/client/streamableHttp.js'),
  };
} catch (e) {
  console.log(`FAIL ${new Date().toISOString()} +0 #0 load: cannot load @modelcontextprotocol/sdk from ${nodeModules}: ${e.message}`);
  console.log(`${NAME}: requests=0 failures=1 longest_gap_ms=0 session_changed=no nodes=`);
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

// ------------------------------------------------------------------ wire tap
// Counts HTTP statuses per method and logs every GET (the standalone stream and its
// Last-Event-ID resumptions), so the run shows what the SDK does when a node goes away.
const t0 = Date.now();
const statusCount = new Map(); // "POST 200" -> n
const bump = (k) => statusCount.set(k, (statusCount.get(k) || 0) + 1);
const getLines = [];
let getCount = 0;
async function tapFetch(input, init = {}) {
  const method = (init.method || 'GET').toUpperCase();
  let lastEventId = '';
  if (method === 'GET') {
    const h = new Headers(init.headers || {});
    lastEventId = h.get('last-event-id') || '';
  }
  let res;
  try {
    res = await fetch(input, init);
  } catch (e) {
    bump(`${method} error`);
    if (method === 'GET') logGet(`GET${lastEventId ? ` Last-Event-ID=${lastEventId}` : ''} -> fetch error ${oneLine(e?.cause?.code || e?.message || e)}`);
    throw e;
  }
  bump(`${method} ${res.status}`);
  if (method === 'GET') logGet(`GET${lastEventId ? ` Last-Event-ID=${lastEventId}` : ''} -> ${res.status}`);
  return res;
}
function logGet(what) {
  getCount++;
  if (getLines.length < MAX_GET_LINES) getLines.push(`+${Date.now() - t0}ms ${what}`);
}

// ------------------------------------------------------------------ client
const sdkErrors = [];
const client = new sdk.Client({ name: `mcpd-${NAME}`, version: '1.0.0' }, { capabilities: {} });
const transport = new sdk.StreamableHTTPClientTransport(new URL(url), { fetch: tapFetch });
client.onerror = (e) => {
  const msg = oneLine(e?.message ?? e);
  // A failed POST also rejects its call (printed as FAIL): keep the other errors (SSE, reconnects).
  if (/^(fetch failed|Streamable HTTP error: Error POSTing to endpoint)/.test(msg)) return;
  if (sdkErrors.length < 20) sdkErrors.push(`+${Date.now() - t0}ms ${msg}`);
};

let requests = 0;
let failures = 0;
let longestGap = 0;
const nodes = new Set();
let startSession;
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });

function fail(n, tool, err) {
  failures++;
  if (failures <= MAX_FAIL_LINES) {
    console.log(`FAIL ${new Date().toISOString()} +${Date.now() - t0}ms #${n} ${tool}: ${oneLine(err)}`);
  } else if (failures === MAX_FAIL_LINES + 1) {
    console.log('FAIL (further failures are counted, not printed)');
  }
}

let connected = false;
try {
  await withTimeout(client.connect(transport, { timeout: CALL_TIMEOUT_MS }), CALL_TIMEOUT_MS + 1000, 'initialize');
  startSession = transport.sessionId;
  connected = typeof startSession === 'string' && startSession.length > 0;
  if (connected) console.log(`session ${startSession}`);
  else fail(0, 'initialize', 'no Mcp-Session-Id after initialize');
} catch (e) {
  fail(0, 'initialize', e?.message ?? e);
}

const loopStart = Date.now();
let lastOk = loopStart;
if (connected) {
  for (let n = 1; ; n++) {
    if (stopping || Date.now() - loopStart >= MAX_MS || (stopFile && existsSync(stopFile))) break;
    const tool = n % 10 === 0 ? 'node_info' : 'echo';
    const message = `${NAME}-${n}`;
    requests++;
    try {
      const args = tool === 'echo' ? { message } : {};
      const r = await withTimeout(
        client.callTool({ name: tool, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS }),
        CALL_TIMEOUT_MS + 1000,
        `${tool} call`,
      );
      if (r.isError) throw new Error(`isError result: ${JSON.stringify(r.content)}`);
      const text = (r.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
      if (tool === 'echo') {
        if (text !== `Echo: ${message}`) throw new Error(`wrong echo text ${JSON.stringify(text)}`);
      } else {
        let node = r.structuredContent?.node;
        if (typeof node !== 'string') {
          try { node = JSON.parse(text).node; } catch {}
        }
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
if (requests > 0) longestGap = Math.max(longestGap, Date.now() - lastOk); // the tail counts too

const endSession = transport.sessionId;
const changed = connected && endSession !== startSession ? 'yes' : 'no';
const counts = [...statusCount.entries()].sort().map(([k, v]) => `${k}=${v}`).join(' ');
console.log(`INFO http: ${counts}`);
console.log(`INFO GET requests: ${getCount}${getCount > getLines.length ? ` (first ${getLines.length} shown)` : ''}`);
for (const l of getLines) console.log(`INFO   ${l}`);
if (sdkErrors.length) {
  console.log(`INFO SDK onerror (first ${sdkErrors.length}):`);
  for (const l of sdkErrors) console.log(`INFO   ${l}`);
}
if (changed === 'yes') console.log(`INFO session id changed: ${startSession} -> ${endSession}`);
console.log(`${NAME}: requests=${requests} failures=${failures} longest_gap_ms=${longestGap} session_changed=${changed} nodes=${[...nodes].sort().join(',')}`);

// Best effort: end the session (DELETE) and close, bounded; the summary is already out.
try {
  if (connected) await withTimeout(transport.terminateSession(), 3000, 'DELETE');
} catch {}
try {
  await withTimeout(client.close(), 2000, 'close');
} catch {}
process.exit(0);

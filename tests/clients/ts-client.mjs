// End-to-end scenario against a running mcpd, driven by the official TypeScript SDK
// client (@modelcontextprotocol/sdk 1.32.2, installed by tests/prereqs.sh).
//
//   $MCPT_NODE22 tests/clients/ts-client.mjs http://127.0.0.1:PORT/mcp
//
// The SDK lives in the deps dir, not next to this file, and ESM `import` resolves bare
// specifiers relative to the importing file (NODE_PATH is ignored for ESM). So the SDK
// is loaded with a require() rooted at $MCPT_NODE_MODULES (its CommonJS build, resolved
// through the package's own "exports" map): works from any cwd, no symlinks needed.
//
// Prints one line per step ("ok <step>: ..." / "FAIL <step>: ..."), then
// "ts-client: N passed, M failed"; exits 1 on any failure. MCPT_CLIENT_VERBOSE=1 also
// prints every HTTP exchange.
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const NAME = 'ts-client';
const PROTOCOL = '2025-11-25';
const STEP_TIMEOUT_MS = 20_000;
const GRACE_MS = 250; // see step g

const url = process.argv[2];
if (!url) {
  console.error(`usage: node ts-client.mjs http://127.0.0.1:PORT/mcp`);
  process.exit(2);
}
const nodeModules =
  process.env.MCPT_NODE_MODULES ||
  path.join(process.env.MCPT_TEST_DEPS || path.join(os.homedir(), '.cache', 'mcpd-test-deps'), 'node', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
let sdk;
try {
  sdk = {
    ...require('@modelcontextprotocol/sdk/client/index.js'),
    ...require('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    ...require('@modelcontextprotocol/sdk/types.js'),
  };
} catch (e) {
  console.error(`${NAME}: cannot load @modelcontextprotocol/sdk from ${nodeModules} (run tests/prereqs.sh): ${e.message}`);
  process.exit(2);
}
const sdkVersion = JSON.parse(readFileSync(path.join(nodeModules, '@modelcontextprotocol/sdk/package.json'), 'utf8')).version;

// ------------------------------------------------------------------ helpers
class StepError extends Error {}
function check(cond, what, seen) {
  if (!cond) throw new StepError(`${what}; saw ${typeof seen === 'string' ? seen : JSON.stringify(seen)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = pred();
    if (v) return v;
    await sleep(20);
  }
  throw new StepError(`timed out after ${ms} ms waiting for ${what}`);
}
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new StepError(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
const textOf = (result) =>
  (result?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);

// ------------------------------------------------------------------ wire taps
// HTTP exchanges (method, JSON-RPC method, status, content type) for diagnostics, and
// the text of every GET (standalone) SSE stream, to prove where a notification came in,
// and when each POST's SSE response body ended (entry.endedAt), to see the server finish a call.
const http = [];
let getStreamText = '';
let getStreamsOpened = 0;
async function tapFetch(input, init = {}) {
  const method = (init.method || 'GET').toUpperCase();
  let rpc = '';
  let body;
  if (typeof init.body === 'string') {
    try {
      body = JSON.parse(init.body);
      rpc = body.method ? body.method : body.id !== undefined ? `response#${body.id}` : '';
    } catch {}
  }
  const entry = { method, rpc, body, status: 0, ctype: '' };
  http.push(entry);
  const res = await fetch(input, init);
  entry.status = res.status;
  entry.ctype = res.headers.get('content-type') || '';
  if (method === 'GET' && res.ok && res.body) {
    getStreamsOpened++;
    const [mine, theirs] = res.body.tee();
    (async () => {
      const dec = new TextDecoder();
      try {
        for await (const chunk of mine) {
          getStreamText += dec.decode(chunk, { stream: true });
          if (getStreamText.length > 1 << 20) getStreamText = getStreamText.slice(-(1 << 19));
        }
      } catch {}
    })();
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  }
  if (method === 'POST' && res.ok && res.body && entry.ctype.startsWith('text/event-stream')) {
    const [mine, theirs] = res.body.tee();
    (async () => {
      try {
        for await (const _ of mine);
      } catch {}
      entry.endedAt = Date.now();
    })();
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  }
  return res;
}
const httpSummary = () => http.map((h) => `${h.method}${h.rpc ? ' ' + h.rpc : ''}→${h.status}`).join(', ');

// Every message the transport hands to the client, with its arrival time.
const inbound = [];
const clientErrors = [];

// ------------------------------------------------------------------ scenario
const client = new sdk.Client({ name: 'mcpd-ts-client', version: '1.0.0' }, { capabilities: {} });
const transport = new sdk.StreamableHTTPClientTransport(new URL(url), { fetch: tapFetch });
client.onerror = (e) => clientErrors.push(String(e?.message ?? e));
const logs = [];
client.setNotificationHandler(sdk.LoggingMessageNotificationSchema, (n) => logs.push(n.params));
const updates = [];
client.setNotificationHandler(sdk.ResourceUpdatedNotificationSchema, (n) => updates.push(n.params));

let sessionId;
let connected = false;
const steps = [
  ['a-connect', async () => {
    await client.connect(transport);
    connected = true;
    // Tap after connect(): Protocol installs its own onmessage in connect().
    const orig = transport.onmessage;
    transport.onmessage = (msg, extra) => {
      inbound.push({ at: Date.now(), msg });
      orig?.(msg, extra);
    };
    const info = client.getServerVersion();
    check(info?.name === 'mcpd', 'serverInfo.name must be "mcpd"', info);
    check(transport.protocolVersion === PROTOCOL, `negotiated protocol version must be ${PROTOCOL}`, String(transport.protocolVersion));
    sessionId = transport.sessionId;
    check(typeof sessionId === 'string' && sessionId.length > 0, 'server must assign an Mcp-Session-Id', String(sessionId));
    return `server ${info.name} ${info.version}, protocol ${transport.protocolVersion}, session ${sessionId}`;
  }],
  ['b-tools-list', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    const want = ['node_info', 'echo', 'long_task', 'notify', 'touch_resource'];
    const missing = want.filter((n) => !names.includes(n));
    check(missing.length === 0, `tools/list must contain ${want.join(', ')} (missing ${missing.join(', ')})`, names);
    return `${names.length} tools: ${names.join(', ')}`;
  }],
  ['c-echo', async () => {
    const r = await client.callTool({ name: 'echo', arguments: { message: 'hello' } });
    const texts = textOf(r);
    check(!r.isError && texts.length === 1 && texts[0] === 'Echo: hello', 'echo must return one text item "Echo: hello"', r);
    return texts[0];
  }],
  ['d-node-info', async () => {
    const r = await client.callTool({ name: 'node_info', arguments: {} });
    const sc = r.structuredContent;
    check(!r.isError && sc && typeof sc === 'object', 'node_info must return structuredContent', r);
    check(typeof sc.node === 'string', 'structuredContent.node must be a string', sc);
    check(sc.session_id === sessionId, `structuredContent.session_id must equal the client's session id ${sessionId}`, sc);
    return `node ${JSON.stringify(sc.node)}, session_id matches`;
  }],
  ['e-notify-get-stream', async () => {
    // The server can only reach us outside a request once the GET stream is open; the SDK
    // opens it right after the 202 for notifications/initialized.
    await waitFor(() => getStreamsOpened > 0, 5000, `the standalone GET stream to open (HTTP so far: ${httpSummary()})`);
    const msg = `ping-from-server-${randomUUID()}`;
    const r = await client.callTool({ name: 'notify', arguments: { message: msg } });
    check(!r.isError, 'notify must not return isError', r);
    const seen = await waitFor(() => logs.find((p) => p.data === msg), 5000,
      `notifications/message with data ${JSON.stringify(msg)} (got ${JSON.stringify(logs)})`);
    check(seen.level === 'info', 'notification level must be "info"', seen);
    check(getStreamText.includes(msg), 'the notification must arrive on the standalone GET stream', 'it came on another stream');
    return `notifications/message level=info data=${msg} arrived on the GET stream`;
  }],
  ['f-progress', async () => {
    const prog = [];
    const r = await client.callTool({ name: 'long_task', arguments: { steps: 3, interval_ms: 50 } }, undefined,
      { onprogress: (p) => prog.push(p) });
    const texts = textOf(r);
    check(!r.isError && texts.includes('completed 3 steps'), 'long_task result text must be "completed 3 steps"', r);
    check(prog.length >= 3, 'at least 3 progress notifications', prog);
    for (let i = 1; i < prog.length; i++) check(prog[i].progress > prog[i - 1].progress, 'progress must increase', prog);
    check(prog.every((p) => p.total === 3), 'every progress notification must carry total 3', prog);
    return `${prog.length} progress notifications (${prog.map((p) => p.progress).join(',')}/3), "${texts[0]}"`;
  }],
  ['g-cancel', async () => {
    const ac = new AbortController();
    const prog = [];
    let abortedAt = 0;
    const callStart = inbound.length; // index: everything after this came during this call
    const call = client.callTool({ name: 'long_task', arguments: { steps: 100, interval_ms: 100 } }, undefined, {
      signal: ac.signal,
      onprogress: (p) => {
        prog.push(p);
        if (!abortedAt) {
          abortedAt = Date.now();
          ac.abort('mcpd test cancels the call');   // the SDK POSTs notifications/cancelled
        }
      },
    });
    const outcome = await withTimeout(call.then((r) => ({ ok: r }), (e) => ({ err: e })), 10_000, 'the cancelled long_task call');
    check(abortedAt > 0, 'a first progress notification before cancelling', prog);
    check(outcome.err, 'the cancelled call must end with an abort error, not a result', outcome.ok);
    const endedMs = Date.now() - abortedAt;
    check(endedMs <= 2000, 'the cancelled call must end within 2 s', `${endedMs} ms`);
    // The SDK uses the request's JSON-RPC id as its progress token: take it from the POST.
    const token = http.find((h) => h.rpc === 'tools/call' && h.body?.params?.arguments?.steps === 100)?.body.id;
    check(token !== undefined, 'the long_task tools/call POST on the wire', httpSummary());
    check(inbound.slice(callStart).some((m) => m.msg.method === 'notifications/progress' && m.msg.params.progressToken === token),
      `progress notifications with progressToken ${token}`, inbound.slice(callStart).map((m) => m.msg));
    // Allow GRACE_MS for notifications already in flight when we cancelled (a loaded CI box
    // may take a while to process the cancel), then watch 500 ms: none may arrive.
    await sleep(GRACE_MS + 500);
    const cancelSent = http.find((h) => h.rpc === 'notifications/cancelled');
    check(cancelSent && cancelSent.status === 202, 'the SDK must POST notifications/cancelled and get 202', httpSummary());
    const late = inbound.filter((m) => m.msg.method === 'notifications/progress' && m.msg.params.progressToken === token && m.at > abortedAt + GRACE_MS);
    check(late.length === 0, `no progress notifications for the cancelled call ${GRACE_MS}..${GRACE_MS + 500} ms after cancelling (the handler must stop)`,
      late.map((m) => `+${m.at - abortedAt}ms ${JSON.stringify(m.msg.params)}`).join('; '));
    const resp = inbound.slice(callStart).find((m) => m.msg.id === token && ('result' in m.msg || 'error' in m.msg));
    const post = http.find((h) => h.rpc === 'tools/call' && h.body?.id === token);
    const streamEnd = post?.endedAt ? `server ended the call's SSE response ${post.endedAt - abortedAt} ms after the cancel` :
      post?.ctype.startsWith('text/event-stream') ? "the call's SSE response is still open" : `the call was answered as ${post?.ctype}`;
    const r = await client.callTool({ name: 'echo', arguments: { message: 'after-cancel' } });
    check(textOf(r)[0] === 'Echo: after-cancel', 'echo after the cancellation must still work', r);
    return `aborted after ${prog.length} progress notification(s), call ended in ${endedMs} ms, ` +
      `no progress afterwards, ${streamEnd}, session still works` +
      (resp ? ` (note: server still sent a ${'result' in resp.msg ? 'result' : 'error'} for the cancelled request: ${JSON.stringify(resp.msg.result ?? resp.msg.error)})` : '');
  }],
  ['h-resource-subscribe', async () => {
    const caps = client.getServerCapabilities();
    check(caps?.resources?.subscribe === true, 'server must declare resources.subscribe', caps);
    await client.subscribeResource({ uri: 'mcpd://node' });
    const r = await client.callTool({ name: 'touch_resource', arguments: { uri: 'mcpd://node' } });
    check(!r.isError, 'touch_resource must not return isError', r);
    await waitFor(() => updates.find((u) => u.uri === 'mcpd://node'), 5000,
      `notifications/resources/updated for mcpd://node (got ${JSON.stringify(updates)})`);
    return 'notifications/resources/updated uri=mcpd://node received';
  }],
  ['i-delete-then-404', async () => {
    await transport.terminateSession();
    const del = [...http].reverse().find((h) => h.method === 'DELETE');
    check(del && del.status >= 200 && del.status < 300, 'DELETE of the session must answer 2xx', del ?? 'no DELETE sent');
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        Accept: 'application/json, text/event-stream',
        'Content-Type': 'application/json',
        'MCP-Protocol-Version': PROTOCOL,
        'Mcp-Session-Id': sessionId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9001, method: 'tools/call', params: { name: 'echo', arguments: { message: 'dead' } } }),
    });
    const body = await res.text();
    check(res.status === 404, 'POST with the terminated session id must get HTTP 404',
      `HTTP ${res.status} ${res.headers.get('content-type') || ''} ${body.slice(0, 300)}`);
    return `DELETE → ${del.status}; POST with the old session id → 404`;
  }],
];

let passed = 0;
let failed = 0;
for (const [name, fn] of steps) {
  if (!connected && name !== 'a-connect') {
    console.log(`FAIL ${name}: skipped, not connected`);
    failed++;
    continue;
  }
  try {
    const what = await withTimeout(fn(), STEP_TIMEOUT_MS, `step ${name}`);
    console.log(`ok   ${name}: ${what}`);
    passed++;
  } catch (e) {
    console.log(`FAIL ${name}: ${e instanceof StepError ? e.message : e?.stack ?? e}`);
    console.log(`     HTTP so far: ${httpSummary()}`);
    if (clientErrors.length) console.log(`     client errors: ${clientErrors.slice(-5).join(' | ')}`);
    failed++;
  }
}
try {
  await withTimeout(client.close(), 5000, 'client.close()');
} catch {}
const noise = clientErrors.filter((e) => !/AbortError|aborted/i.test(e));
if (noise.length) console.log(`note: SDK client reported: ${noise.slice(0, 5).join(' | ')}`);
if (process.env.MCPT_CLIENT_VERBOSE) console.log(`HTTP exchanges: ${httpSummary()}`);
console.log(`(sdk ${sdkVersion}, node ${process.version})`);
console.log(`${NAME}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

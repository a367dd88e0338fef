// The official TypeScript SDK client 2.x (@modelcontextprotocol/client 2.4.0, installed by
// tests/prereqs.sh) against a running mcpd serving the conformance fixtures, in both eras:
// `versionNegotiation: { mode: 'auto' }` settles on 2026-07-28 (tools, progress, an MRTR
// elicitation answered by the registered handler, a listen stream hearing a touched resource),
// and the client's default (legacy: initialize, a session) still works.
//
//   $MCPT_NODE22 tests/clients/ts-modern.mjs http://127.0.0.1:PORT/mcp
//
// Loaded with a require() rooted at $MCPT_NODE_MODULES, like ts-client.mjs. Every request is
// recorded through a wrapping fetch: the modern client must never send or get Mcp-Session-Id.
// Prints "ok <step>: ..." / "FAIL <step>: ...", then "ts-modern: N passed, M failed"; exits 1 on
// any failure.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const NAME = 'ts-modern';
const MODERN = '2026-07-28';
const STEP_TIMEOUT_MS = 20_000;

// --modern-only leaves out the last step (the legacy default opening a session), for runs
// through a proxy that may route a cookieless session's requests anywhere.
const args = process.argv.slice(2);
const modernOnly = args[0] === '--modern-only';
const url = modernOnly ? args[1] : args[0];
if (!url) {
  console.error('usage: node ts-modern.mjs [--modern-only] http://127.0.0.1:PORT/mcp');
  process.exit(2);
}
const nodeModules =
  process.env.MCPT_NODE_MODULES ||
  path.join(process.env.MCPT_TEST_DEPS || path.join(os.homedir(), '.cache', 'mcpd-test-deps'), 'node', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
let sdk;
try {
  sdk = require('@modelcontextprotocol/client');
} catch (e) {
  console.error(`${NAME}: cannot load @modelcontextprotocol/client from ${nodeModules} (run tests/prereqs.sh): ${e.message}`);
  process.exit(2);
}
const version = JSON.parse(readFileSync(path.join(nodeModules, '@modelcontextprotocol/client/package.json'), 'utf8')).version;

class StepError extends Error {}
function check(cond, what, seen) {
  if (!cond) throw new StepError(`${what}; saw ${typeof seen === 'string' ? seen : JSON.stringify(seen)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const results = [];
async function step(name, body) {
  let timer;
  try {
    const detail = await Promise.race([
      body(),
      new Promise((_, rej) => (timer = setTimeout(() => rej(new StepError(`no result within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS))),
    ]);
    results.push([name, true]);
    console.log(`ok   ${name}: ${detail}`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${name}: ${e instanceof StepError ? e.message : e.stack}`);
  } finally {
    clearTimeout(timer);
  }
}

// Every exchange: [mcp-method, status, session id sent, session id got].
const wire = [];
const recordingFetch = async (input, init) => {
  const headers = new Headers(init?.headers);
  const r = await fetch(input, init);
  wire.push([headers.get('mcp-method') || init?.method || 'GET', r.status, headers.get('mcp-session-id'), r.headers.get('mcp-session-id')]);
  return r;
};

// ------------------------------------------------------------------ modern (auto)
const elicited = [];
const updates = [];
const modern = new sdk.Client(
  { name: 'mcpd-ts-modern', version: '1.0.0' },
  { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: 'auto' } },
);
modern.setRequestHandler('elicitation/create', async (req) => {
  elicited.push(req.params.message);
  return { action: 'accept', content: { name: 'Carol' } };
});
modern.setNotificationHandler('notifications/resources/updated', (n) => updates.push(n.params.uri));
const modernTransport = new sdk.StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch });

await step('a-connect-auto', async () => {
  await modern.connect(modernTransport);
  check(modern.getProtocolEra() === 'modern', 'the modern era', modern.getProtocolEra());
  check(modern.getNegotiatedProtocolVersion() === MODERN, MODERN, modern.getNegotiatedProtocolVersion());
  check(wire[0]?.[0] === 'server/discover', 'server/discover first', wire);
  return `era ${modern.getProtocolEra()} ${modern.getNegotiatedProtocolVersion()}`;
});

await step('b-tools', async () => {
  const names = (await modern.listTools()).tools.map((t) => t.name);
  check(names.includes('echo') && names.includes('test_input_required_result_elicitation'), 'tools listed', names);
  const r = await modern.callTool({ name: 'echo', arguments: { message: 'hi' } });
  check(r.content[0].text === 'Echo: hi', 'echo', r);
  return `${names.length} tools; echo ${JSON.stringify(r.content[0].text)}`;
});

await step('c-progress', async () => {
  const seen = [];
  const r = await modern.callTool(
    { name: 'long_task', arguments: { steps: 3, interval_ms: 20 } },
    { onprogress: (p) => seen.push(p.progress) },
  );
  check(r.content[0].text === 'completed 3 steps', 'long_task result', r);
  check(JSON.stringify(seen) === '[1,2,3]', 'progress 1, 2, 3', seen);
  return `progress ${JSON.stringify(seen)}`;
});

await step('d-mrtr-elicitation', async () => {
  const r = await modern.callTool({ name: 'test_input_required_result_elicitation', arguments: {} });
  check(r.content[0].text === 'Hello, Carol!', 'the handler answered the input request', r);
  check(elicited.length === 1 && elicited[0] === 'What is your name?', 'asked once', elicited);
  return JSON.stringify(r.content[0].text);
});

await step('e-listen', async () => {
  const sub = await modern.listen({ resourceSubscriptions: ['mcpd://node'] });
  // Through a cluster the change travels Redis pub/sub, which delivers at most once (a node's
  // subscriber may still be joining): touch again until the update arrives, 5 s at most.
  let touches = 0;
  for (let i = 0; i < 100 && updates.length === 0; i++) {
    if (i % 10 === 0) {
      touches++;
      await modern.callTool({ name: 'touch_resource', arguments: { uri: 'mcpd://node' } });
    }
    await sleep(50);
  }
  check(updates[0] === 'mcpd://node', 'the update on the listen stream', updates);
  await sub.close();
  return `updated ${updates[0]} after ${touches} touch(es), honored ${JSON.stringify(sub.honoredFilter)}`;
});

await step('f-wire', async () => {
  const sessions = wire.filter(([, , sent, got]) => sent || got);
  check(sessions.length === 0, 'no Mcp-Session-Id either way', sessions);
  return `${wire.length} exchanges, no session id`;
});
await modern.close();

// ------------------------------------------------------------------ the default: legacy
if (!modernOnly) await step('g-default-is-legacy', async () => {
  const legacy = new sdk.Client({ name: 'mcpd-ts-legacy', version: '1.0.0' });
  const t = new sdk.StreamableHTTPClientTransport(new URL(url));
  await legacy.connect(t);
  check(legacy.getProtocolEra() === 'legacy', 'the legacy era', legacy.getProtocolEra());
  check(typeof t.sessionId === 'string' && t.sessionId.length > 0, 'a session', t.sessionId);
  const r = await legacy.callTool({ name: 'echo', arguments: { message: 'old' } });
  check(r.content[0].text === 'Echo: old', 'echo in the session', r);
  const detail = `era legacy ${legacy.getNegotiatedProtocolVersion()}, session ${t.sessionId}`;
  await t.terminateSession();
  await legacy.close();
  return detail;
});

const passed = results.filter(([, ok]) => ok).length;
console.log(`(@modelcontextprotocol/client ${version}, node ${process.version})`);
console.log(`${NAME}: ${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);

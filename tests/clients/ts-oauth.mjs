// The official TypeScript SDK client 2.x (@modelcontextprotocol/client 2.4.0) against an mcpd that
// demands bearer tokens, headless: `ClientCredentialsProvider` meets the 401, follows the challenge
// to the Protected Resource Metadata, gets a token from the authorization server with
// client_credentials (and the `resource` indicator), and calls tools in both eras.
//
//   $MCPT_NODE22 tests/clients/ts-oauth.mjs URL ISSUER CLIENT_ID CLIENT_SECRET
//
// Loaded with a require() rooted at $MCPT_NODE_MODULES, like ts-modern.mjs. Every exchange is
// recorded: the first request must be refused with 401, and the token must come from ISSUER.
// Prints "ok <step>: ..." / "FAIL <step>: ...", then "ts-oauth: N passed, M failed"; exits 1 on any
// failure.
import { createRequire } from 'node:module';
import path from 'node:path';
import os from 'node:os';

const NAME = 'ts-oauth';
const STEP_TIMEOUT_MS = 20_000;
const [url, issuer, clientId, clientSecret] = process.argv.slice(2);
if (!clientSecret) {
  console.error(`usage: ${NAME}.mjs URL ISSUER CLIENT_ID CLIENT_SECRET`);
  process.exit(2);
}
const nodeModules =
  process.env.MCPT_NODE_MODULES ||
  path.join(process.env.MCPT_TEST_DEPS || path.join(os.homedir(), '.cache', 'mcpd-test-deps'), 'node', 'node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
const sdk = require('@modelcontextprotocol/client');

class StepError extends Error {}
function check(cond, what, seen) {
  if (!cond) throw new StepError(`${what}; saw ${typeof seen === 'string' ? seen : JSON.stringify(seen)}`);
}

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

// Every exchange: [method, url, status].
const wire = [];
const recordingFetch = async (input, init) => {
  const r = await fetch(input, init);
  wire.push([init?.method || 'GET', String(input instanceof Request ? input.url : input), r.status]);
  return r;
};

const provider = new sdk.ClientCredentialsProvider({ clientId, clientSecret, scope: 'mcp:tools', expectedIssuer: issuer });

await step('a-modern-auto', async () => {
  const client = new sdk.Client({ name: 'mcpd-ts-oauth', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  const transport = new sdk.StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  check(client.getProtocolEra() === 'modern', 'the modern era', client.getProtocolEra());
  const r = await client.callTool({ name: 'echo', arguments: { message: 'with a token' } });
  check(r.content[0].text === 'Echo: with a token', 'echo', r);
  await client.close();
  check(wire[0]?.[2] === 401, 'the first request is refused with 401', wire);
  const metadata = wire.find(([, u]) => u.includes('/.well-known/oauth-protected-resource'));
  check(metadata?.[2] === 200, 'the metadata was fetched', wire);
  const token = wire.find(([m, u]) => m === 'POST' && u.startsWith(issuer) && u.endsWith('/token'));
  check(token?.[2] === 200, 'a token from the authorization server', wire);
  return `auto mode with a token: ${wire.length} exchanges, first 401, metadata, token`;
});

await step('b-legacy-session', async () => {
  const before = wire.length;
  const client = new sdk.Client({ name: 'mcpd-ts-oauth-legacy', version: '1.0.0' });
  const transport = new sdk.StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  check(client.getProtocolEra() === 'legacy', 'the legacy era', client.getProtocolEra());
  const r = await client.callTool({ name: 'echo', arguments: { message: 'in a session' } });
  check(r.content[0].text === 'Echo: in a session', 'echo', r);
  await transport.terminateSession();
  await client.close();
  const refused = wire.slice(before).filter(([, , s]) => s === 401);
  check(refused.length === 0, 'the stored token is used from the first request', refused);
  return `a session with the stored token: ${wire.length - before} exchanges, none refused`;
});

const passed = results.filter(([, ok]) => ok).length;
console.log(`${NAME}: ${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);

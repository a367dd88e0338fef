// A real OAuth 2.1 authorization server for the authorization tests: oidc-provider (panva,
// pinned in tests/tools/package.json), issuing RS256 JWT access tokens (RFC 9068) with the
// client_credentials grant and resource indicators (RFC 8707), and answering introspection.
//
//   AS_PORT=4455 RESOURCES="http://127.0.0.1:8080/mcp http://127.0.0.1:9/other" \
//     $MCPT_NODE22 tests/auth/as.mjs
//
// env  AS_PORT      port on 127.0.0.1 (required)
//      RESOURCES    space-separated resource URLs tokens may be issued for (required)
//      TOKEN_TTL    access token lifetime in seconds (default 300)
// Clients: `mcpd-test` / `mcpd-test-secret` (scopes mcp:tools mcp:admin) and `other-client` /
// `other-secret` (a second principal). A new signing key (and kid) on every start, so a restart
// is a key rotation. Prints "AS <issuer> kid=<kid>" once listening; stops on SIGTERM.
import { createRequire } from 'node:module';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.MCPT_NODE_MODULES;
if (!modules) throw new Error('MCPT_NODE_MODULES is not set (source the env.sh tests/prereqs.sh writes)');
const require = createRequire(path.join(modules, 'noop.js'));
const entry = require.resolve('oidc-provider');
const { default: Provider, errors } = await import(pathToFileURL(entry).href);

const port = Number(process.env.AS_PORT);
if (!port) throw new Error('AS_PORT is required');
const issuer = `http://127.0.0.1:${port}`;
const resources = (process.env.RESOURCES ?? '').split(' ').filter(Boolean);
if (resources.length === 0) throw new Error('RESOURCES is required');
const ttl = Number(process.env.TOKEN_TTL ?? 300);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = `k-${randomUUID().slice(0, 8)}`;
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

const client = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'mcp:tools mcp:admin',
});

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [client('mcpd-test', 'mcpd-test-secret'), client('other-client', 'other-secret')],
  scopes: ['mcp:tools', 'mcp:admin'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      getResourceServerInfo: async (_ctx, resource) => {
        if (!resources.includes(resource)) throw new errors.InvalidTarget();
        return {
          scope: 'mcp:tools mcp:admin',
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

const server = provider.listen(port, '127.0.0.1', () => console.log(`AS ${issuer} kid=${kid}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

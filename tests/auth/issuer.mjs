// A bare token issuer for the attack cases of tests/auth.rs: it signs whatever header and claims
// a test asks for (the tokens a real authorization server will not mint: `alg: none`, HS256 with
// the public key as the secret, a string `exp`, an unknown `kid`...) and publishes its keys like
// an authorization server does (RFC 8414 metadata and a JWKS). node:crypto only.
//
//   PORT=4466 $MCPT_NODE22 tests/auth/issuer.mjs
//
// GET  /.well-known/oauth-authorization-server   {issuer, jwks_uri}
// GET  /jwks                                      the published keys (counted)
// GET  /stats                                     {"jwks": fetches so far}
// POST /sign  {"key": K, "header": {...}, "claims": {...}}  -> the token (text/plain)
//      K: "rsa" (published, kid rsa-1, RS256), "ec" (published, kid ec-1, ES256),
//         "unpublished" (an RSA key nobody publishes), "none" (no signature),
//         "hs-public" (HMAC-SHA256 keyed with the published RSA key's PEM)
// POST /rotate                                    a new published RSA key (kid rsa-2) replaces rsa-1
// Prints "ISSUER <url>" once listening; stops on SIGTERM.
import http from 'node:http';
import crypto from 'node:crypto';

const port = Number(process.env.PORT);
if (!port) throw new Error('PORT is required');
const issuer = `http://127.0.0.1:${port}`;

const rsaKey = () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
let rsa = { kid: 'rsa-1', ...rsaKey() };
const ec = { kid: 'ec-1', ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
const unpublished = rsaKey();
let jwksFetches = 0;

const b64 = (data) => Buffer.from(data).toString('base64url');
const jwk = (k, alg) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg, use: 'sig' });

function sign({ key, header, claims }) {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  let sig = '';
  switch (key) {
    case 'rsa': sig = b64(crypto.sign('sha256', Buffer.from(input), rsa.privateKey)); break;
    case 'unpublished': sig = b64(crypto.sign('sha256', Buffer.from(input), unpublished.privateKey)); break;
    case 'ec':
      sig = b64(crypto.sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }));
      break;
    case 'hs-public': {
      const secret = rsa.publicKey.export({ format: 'pem', type: 'spki' });
      sig = b64(crypto.createHmac('sha256', secret).update(input).digest());
      break;
    }
    case 'none': sig = ''; break;
    default: throw new Error(`unknown key ${key}`);
  }
  return `${input}.${sig}`;
}

const server = http.createServer((req, res) => {
  const json = (status, value) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (req.method === 'GET' && req.url === '/.well-known/oauth-authorization-server') {
    return json(200, { issuer, jwks_uri: `${issuer}/jwks` });
  }
  if (req.method === 'GET' && req.url === '/jwks') {
    jwksFetches++;
    return json(200, { keys: [jwk(rsa, 'RS256'), jwk(ec, 'ES256')] });
  }
  if (req.method === 'GET' && req.url === '/stats') return json(200, { jwks: jwksFetches });
  if (req.method === 'POST' && req.url === '/rotate') {
    rsa = { kid: 'rsa-2', ...rsaKey() };
    return json(200, { kid: rsa.kid });
  }
  if (req.method === 'POST' && req.url === '/sign') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(sign(JSON.parse(body)));
      } catch (e) {
        json(400, { error: String(e) });
      }
    });
    return undefined;
  }
  return json(404, { error: 'not found' });
});
server.listen(port, '127.0.0.1', () => console.log(`ISSUER ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

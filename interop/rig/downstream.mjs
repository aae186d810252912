// The downstream API of the token exchange scenarios (rig/exchange.mjs): a
// small http server on 127.0.0.1, ephemeral port, run inside the
// orchestrator. It is what a tool of the MCP server calls as the user:
//
//   GET /api/whoami  with `Authorization: Bearer <token>`
//     -> 200 {sub, aud, client_id, act, scope, jti, token_sha256}
//        when the token is a JWT access token of the rig's provider
//        (`typ: at+jwt`, ES256, checked against the provider's JWKS with
//        jose) whose `aud` is this API's audience and that has not expired;
//        `token_sha256` is the hex SHA-256 of the token it saw
//     -> 401 with `WWW-Authenticate: Bearer error="invalid_token"` otherwise
//   anything else -> 404
//
// Every request with a token is recorded (`seen`: the token's SHA-256,
// whether it was accepted, why not), never the token itself.

import { createHash } from 'node:crypto';
import http from 'node:http';

import { createRemoteJWKSet, jwtVerify } from 'jose';

/** Hex SHA-256 of a token: what the API records and answers, never the token. */
export const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/**
 * Starts the API. Its audience is `<origin>/api`; it refuses every token
 * until `trust(issuer, jwksUri)` names the provider.
 */
export async function startDownstream() {
  const seen = [];
  let trusted;
  const server = http.createServer(async (req, res) => {
    const reply = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    const path = new URL(req.url, 'http://127.0.0.1').pathname;
    if (req.method !== 'GET' || path !== '/api/whoami') {
      reply(404, { error: 'not_found' });
      return;
    }
    const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(req.headers.authorization || '');
    if (!m) {
      seen.push({ token_sha256: null, accepted: false, reason: 'no Bearer token' });
      reply(401, { error: 'invalid_request' }, { 'www-authenticate': 'Bearer' });
      return;
    }
    const token = m[1];
    const record = { token_sha256: sha256(token), accepted: false };
    seen.push(record);
    try {
      if (!trusted) throw new Error('no issuer trusted yet');
      const { payload } = await jwtVerify(token, trusted.keys, {
        issuer: trusted.issuer,
        audience: api.audience,
        typ: 'at+jwt',
        algorithms: ['ES256'],
        requiredClaims: ['sub', 'exp'],
      });
      record.accepted = true;
      reply(200, {
        sub: payload.sub,
        aud: payload.aud,
        client_id: payload.client_id,
        act: payload.act,
        scope: payload.scope,
        jti: payload.jti,
        token_sha256: record.token_sha256,
      });
    } catch (err) {
      record.reason = err.code || err.message;
      reply(401, { error: 'invalid_token' }, {
        'www-authenticate': `Bearer error="invalid_token", error_description="${String(record.reason).replace(/["\\]/g, '')}"`,
      });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const api = {
    origin,
    audience: `${origin}/api`,
    url: `${origin}/api/whoami`,
    seen,
    trust(issuer, jwksUri) {
      trusted = { issuer, keys: createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 5000 }) };
    },
    close: () => server.close(),
  };
  return api;
}

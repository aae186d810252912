// The rig's authorization server: panva's oidc-provider (9.x) on loopback.
//
// What it is configured to do, and why:
// - RFC 8707 resource indicators: the only audiences it issues access tokens
//   for are the resources named in RIG_RESOURCES. Every such token is a JWT
//   (RFC 9068, header `typ: at+jwt`) signed with ES256, `aud` = the resource.
// - PKCE is required for every client (oidc-provider only implements S256).
// - No refresh tokens: every step-up is a new authorization (see below).
// - DPoP (RFC 9449, on by default in oidc-provider 9): a token request with a
//   DPoP proof gets a DPoP-bound token (`token_type: DPoP`, `cnf.jkt`).
// - Open dynamic client registration (RFC 7591), the client credentials
//   grant, and Client ID Metadata Documents (a client_id that is an https URL;
//   the document is fetched from the rig's own https host on loopback, whose
//   self-signed certificate only this process trusts).
// - An interaction that approves everything at once: the login prompt logs
//   in RIG_SUBJECT, the consent prompt grants every requested scope on every
//   requested resource. A client finishes the code flow by following
//   redirects with a cookie jar; no page is ever shown.
//
// - RFC 8693 token exchange (rig/token-exchange.mjs) when
//   RIG_EXCHANGE_CLIENT_ID is set: a static confidential client (the MCP
//   server's) may exchange an access token issued for one of
//   RIG_EXCHANGE_SUBJECT_AUDIENCES for a token for one of
//   RIG_EXCHANGE_AUDIENCES, the downstream APIs.
//
// Rig-only routes (not part of any standard):
//   GET /_rig/issued     every access token issued so far (its claims, no value)
//   GET /_rig/exchanges  every token exchange attempt, issued or refused
//
// Environment:
//   RIG_SUBJECT        the subject the interaction logs in (required)
//   RIG_RESOURCES      comma-separated resource indicators it issues tokens
//                      for; an entry ending in `*` is a prefix
//   RIG_CIMD_CA        PEM file: the CA to trust when fetching CIMD documents
//   RIG_CIMD_ORIGIN    the only origin CIMD documents may be fetched from
//   RIG_EXCHANGE_CLIENT_ID, RIG_EXCHANGE_CLIENT_SECRET
//                      the client allowed to exchange tokens (client_secret_basic)
//   RIG_EXCHANGE_SUBJECT_AUDIENCES
//                      comma-separated: the MCP servers (resources) that client
//                      is; only their tokens may be exchanged
//   RIG_EXCHANGE_AUDIENCES
//                      comma-separated: the downstream APIs tokens are exchanged for
//   RIG_EXCHANGE_SCOPES
//                      space-separated scopes of those APIs (default downstream:read;
//                      the first is granted when none is asked)
//   RIG_EXCHANGE_CONSENT_AUDIENCES
//                      comma-separated: those of the downstream APIs whose
//                      exchanges need the user's consent, the subject token's
//                      `scope` holding RIG_EXCHANGE_CONSENT_SCOPE (default
//                      downstream:consent); else `consent_required`
//
// Prints `issuer http://127.0.0.1:PORT` on stdout once it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

import { exchangeClient, exchangeSettings, tokenExchange } from './token-exchange.mjs';

const SUBJECT = process.env.RIG_SUBJECT;
if (!SUBJECT) {
  console.error('RIG_SUBJECT is required');
  process.exit(2);
}
const RESOURCES = new Set(
  (process.env.RIG_RESOURCES || '').split(',').map((s) => s.trim()).filter(Boolean),
);
const resourceKnown = (indicator) => [...RESOURCES].some((r) => (r.endsWith('*')
  ? indicator.startsWith(r.slice(0, -1))
  : indicator === r));
// Every scope the reference server asks for: notes:private (read_note from the
// private folder, notes://private/ resources) and notes:export (export_notes)
// are granted like the others, so their step-ups can succeed. So is
// downstream:consent, the user's consent to a downstream API whose exchanges
// need it (RIG_EXCHANGE_CONSENT_AUDIENCES): the consent step-up's
// re-authorization asks for it, the interaction grants it.
const RESOURCE_SCOPES = 'notes:read notes:write notes:private notes:export downstream:consent';
const CIMD_CA = process.env.RIG_CIMD_CA ? readFileSync(process.env.RIG_CIMD_CA) : undefined;
const CIMD_ORIGIN = process.env.RIG_CIMD_ORIGIN;

// Claims of every access token issued, for the rig's assertions.
const issued = [];

const EXCHANGE = exchangeSettings(process.env);

function signingKeys() {
  // ES256 signs access tokens; RS256 is what oidc-provider signs ID tokens
  // with by default, and registration fails without such a key.
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...ec, kid: `es-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'ES256' },
      { ...rsa, kid: `rs-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' },
    ],
  };
}

// oidc-provider's own fetch refuses loopback addresses (SSRF protection). The
// rig needs exactly one exception: CIMD documents on its loopback https host,
// trusted through the rig's self-signed CA. Everything else is refused.
async function rigFetch(url, options) {
  const target = new URL(url);
  if (!CIMD_ORIGIN || target.origin !== CIMD_ORIGIN) {
    throw new TypeError(`the rig's provider fetches nothing but ${CIMD_ORIGIN || 'nothing'}`);
  }
  const headers = {};
  for (const [k, v] of new Headers(options.headers)) headers[k] = v;
  return new Promise((resolve, reject) => {
    const req = https.request(target, {
      method: options.method || 'GET', headers, ca: CIMD_CA, signal: options.signal,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => h.append(k, x)); else if (v !== undefined) h.set(k, v);
        }
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: h }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const jwks = signingKeys();
// The public halves, for verifying the provider's own tokens (the exchange).
const publicJwks = {
  keys: jwks.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
};
const exchange = EXCHANGE && tokenExchange(EXCHANGE, publicJwks);

const provider = new Provider(issuer, {
  jwks,
  clients: EXCHANGE ? [exchangeClient(EXCHANGE)] : [],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', ...RESOURCE_SCOPES.split(' ')],
  // A registration's `scope` caps what the client may ever request. MCP
  // clients register with the scope of the first challenge (notes:read), and
  // would then be refused every step-up (notes:write, notes:private,
  // notes:export); this provider lets every registered client ask for every
  // scope of the resource.
  extraClientMetadata: {
    properties: ['rig_scope_policy'],
    validator(_ctx, key, _value, metadata) {
      if (key === 'rig_scope_policy') metadata.scope = `openid offline_access ${RESOURCE_SCOPES}`;
    },
  },
  responseTypes: ['code'],
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, Grant: 3600,
    Interaction: 600, Session: 3600, IdToken: 600,
  },
  pkce: { required: () => true },
  // No refresh tokens, even for offline_access: a refresh cannot add scopes,
  // and with one the Inspector CLI (2.12) answers a 403 insufficient_scope by
  // refreshing instead of re-authorizing, then gives up ("auth() returned
  // AUTHORIZED without authorization code"). Every step-up here is a new
  // authorization.
  issueRefreshToken: async () => false,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    clientIdMetadataDocument: {
      enabled: true,
      ack: 'draft-02',
      allowFetch: async (_ctx, clientId) => !!CIMD_ORIGIN && new URL(clientId).origin === CIMD_ORIGIN,
      cacheDuration: { min: 0, max: 0 },
    },
    resourceIndicators: {
      enabled: true,
      // A client that names no resource gets no token for ours: the MCP
      // authorization spec requires clients to send `resource`.
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (!resourceKnown(indicator)) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return {
          scope: RESOURCE_SCOPES,
          audience: indicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  extraTokenClaims: async (_ctx, token) => exchange?.claims(token),
  formats: {
    customizers: {
      async jwt(_ctx, _token, jwt) {
        const { sub, client_id, aud, scope, iss, jti, cnf, act } = jwt.payload;
        issued.push({ sub, client_id, aud, scope, iss, jti, cnf, act });
      },
    },
  },
  fetch: rigFetch,
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;
exchange?.register(provider);

// The auto-approving interaction.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: SUBJECT, remember: false } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `rig cannot satisfy prompt ${prompt.name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  try {
    if (req.method === 'GET' && path.startsWith('/interaction/')) {
      await interaction(req, res);
    } else if (req.method === 'GET' && path === '/_rig/issued') {
      json(res, 200, issued);
    } else if (req.method === 'GET' && path === '/_rig/exchanges') {
      json(res, 200, exchange?.log ?? []);
    } else {
      callback(req, res);
    }
  } catch (err) {
    console.error('rig provider error:', err);
    if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: String(err) });
  }
});

provider.on('server_error', (_ctx, err) => console.error('provider server_error:', err));
for (const event of ['authorization.error', 'grant.error', 'registration_create.error', 'introspection.error']) {
  provider.on(event, (_ctx, err) => console.error(`${event}: ${err.message} ${err.error_description || ''}`));
}

console.log(`issuer ${issuer}`);

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));

// Token exchange (RFC 8693, issue 18) through a real authorization server:
// a real MCP client (the TypeScript SDK, full authorization from the 401)
// calls the reference server's `downstream_whoami`; the server exchanges the
// client's token at oidc-provider (the grant of rig/token-exchange.mjs,
// token endpoint discovered from the issuer's metadata) for a token for the
// downstream API (rig/downstream.mjs), and calls it with that token.
//
// The pieces are set up before the provider starts (`prepareExchange`): the
// downstream API (its audience goes into the provider's configuration), the
// exchange client's secret, and the reference servers of the scenarios
// (`startExchangeServers`, right after the provider: their resources are
// the subject audiences the provider accepts, so their ports are fixed):
//
//   ok      MCP_OAUTH2_DOWNSTREAM_AUDIENCE = the API's audience
//   target  MCP_OAUTH2_DOWNSTREAM_AUDIENCE = <API origin>/admin, a look-alike
//           the provider does not exchange for (invalid_target)
//   secret  MCP_OAUTH2_CLIENT_SECRET wrong (invalid_client)
//   consent MCP_OAUTH2_DOWNSTREAM_AUDIENCE = a second downstream API (the
//           consent API), whose exchanges the provider refuses with
//           consent_required unless the subject token holds
//           downstream:consent; MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES =
//           downstream:consent, so the refusal becomes a 403
//           insufficient_scope challenge naming it (late step-up)
//
// Scenario names contain `exchange` (`run.sh --only exchange`).

import { randomBytes } from 'node:crypto';

import { startDownstream } from './downstream.mjs';
import { parseChallenge } from './lib.mjs';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const EXCHANGE_CLIENT = 'mcp-server-exchange';
const SCOPES = 'downstream:read downstream:write';
// The scope standing for the user's consent to the consent API.
const CONSENT_SCOPE = 'downstream:consent';

/** The scenarios' names (run.mjs starts the servers when one is selected). */
export const EXCHANGE_SCENARIOS = {
  ok: 'exchange (ts-sdk, reference server, oidc-provider RFC 8693, downstream API): the user downstream, one exchange for two calls, no passthrough',
  python: 'exchange (python-sdk, stateless 2026-07-28): the user downstream, one exchange for two calls, no passthrough',
  concurrent: 'exchange single flight: eight concurrent downstream_whoami calls (stateless, one fresh token) cost one exchange',
  target: 'exchange refused: a downstream audience the provider does not allow is invalid_target, a tool error',
  secret: 'exchange refused: the MCP server\'s client secret is wrong, invalid_client, a tool error',
  consent: 'exchange consent step-up (ts-sdk): consent_required at the provider is a 403 insufficient_scope naming downstream:consent, the re-authorized call reaches the API as the user',
  consentPython: 'exchange consent step-up (python-sdk, stateless 2026-07-28): consent_required at the provider is a 403 insufficient_scope naming downstream:consent, the re-authorized call reaches the API as the user',
  provider: 'exchange at the provider: the grant\'s rules (client, subject token, audience, scope) hold against hostile requests',
};

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const jwtPart = (token, i) => JSON.parse(Buffer.from(token.split('.')[i], 'base64url'));
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * The downstream API, the exchange client and the ports of the scenario
 * servers; `providerEnv` configures the provider's grant with them.
 */
export async function prepareExchange({ reservedPort }) {
  const downstream = await startDownstream();
  // A second API, whose exchanges need the user's consent.
  const consentApi = await startDownstream();
  const servers = {};
  for (const name of ['ok', 'target', 'secret', 'consent']) {
    // Told to the provider before the servers start: no retry elsewhere.
    const port = await reservedPort();
    servers[name] = { port, resource: `http://127.0.0.1:${port}/mcp` };
  }
  const ex = {
    downstream,
    consentApi,
    close: () => {
      downstream.close();
      consentApi.close();
    },
    clientId: EXCHANGE_CLIENT,
    clientSecret: randomBytes(24).toString('base64url'),
    refusedAudience: `${downstream.origin}/admin`,
    servers,
  };
  ex.providerEnv = {
    RIG_EXCHANGE_CLIENT_ID: ex.clientId,
    RIG_EXCHANGE_CLIENT_SECRET: ex.clientSecret,
    RIG_EXCHANGE_SUBJECT_AUDIENCES: Object.values(servers).map((s) => s.resource).join(','),
    RIG_EXCHANGE_AUDIENCES: downstream.audience,
    RIG_EXCHANGE_SCOPES: SCOPES,
    RIG_EXCHANGE_CONSENT_AUDIENCES: consentApi.audience,
    RIG_EXCHANGE_CONSENT_SCOPE: CONSENT_SCOPE,
  };
  return ex;
}

/** After the provider: the APIs trust it, and the four servers start. */
export async function startExchangeServers(ex, { rig, providerMetadata, startResourceServer, SERVER_BIN }) {
  const { jwks_uri: jwksUri } = await providerMetadata();
  ex.downstream.trust(rig.issuer, jwksUri);
  ex.consentApi.trust(rig.issuer, jwksUri);
  const env = (audience, secret, url = ex.downstream.url) => ({
    MCP_OAUTH2_DOWNSTREAM_AUDIENCE: audience,
    MCP_OAUTH2_DOWNSTREAM_URL: url,
    MCP_OAUTH2_CLIENT_ID: ex.clientId,
    MCP_OAUTH2_CLIENT_SECRET: secret,
  });
  const wanted = {
    ok: env(ex.downstream.audience, ex.clientSecret),
    target: env(ex.refusedAudience, ex.clientSecret),
    secret: env(ex.downstream.audience, `${ex.clientSecret}-wrong`),
    consent: {
      ...env(ex.consentApi.audience, ex.clientSecret, ex.consentApi.url),
      MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES: CONSENT_SCOPE,
    },
  };
  await Promise.all(Object.entries(wanted).map(async ([name, extra]) => {
    const s = ex.servers[name];
    // The port is fixed: the provider accepts subject tokens for exactly
    // these resources.
    s.url = await startResourceServer(`protected-server-exchange-${name}`, SERVER_BIN, s.port,
      () => s.resource, extra, [], { retry: false });
  }));
}

export async function exchangeScenarios({
  scenario, rig, ex, NODE, PYTHON, runClient, issuedTokens, providerMetadata, registerConfidentialClient,
  clientCredentialsToken, fetchT,
}) {
  const exchanges = async () => (await fetchT(`${rig.issuer}/_rig/exchanges`)).json();
  const { downstream } = ex;

  /** A token request at the provider's token endpoint: [status, body]. */
  const tokenRequest = async (authorization, form) => {
    const meta = await providerMetadata();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    if (authorization) headers.authorization = authorization;
    const res = await fetchT(meta.token_endpoint, { method: 'POST', headers, body: new URLSearchParams(form) });
    return [res.status, await res.json()];
  };

  const clients = {
    'ts-sdk': (mode, url) => [NODE, ['clients/ts-sdk.mjs', mode, url]],
    'python-sdk': (mode, url) => [PYTHON, ['clients/python_sdk.py', mode, url]],
  };

  /** Runs a client's `exchange` mode (or `mode`) against one server. */
  const exchangeClient = async (name, client = 'ts-sdk', { mode = 'exchange', api = downstream } = {}) => {
    const exBefore = (await exchanges()).length;
    const seenBefore = api.seen.length;
    const result = await runClient(`${client} ${mode} ${name}`, ...clients[client](mode, ex.servers[name].url));
    assert(result.whoami?.subject === rig.subject, `whoami.subject is ${JSON.stringify(result.whoami?.subject)}, the provider issued ${rig.subject}`);
    assert(result.whoami.client_id === result.clientId, `whoami.client_id ${result.whoami.client_id}, the client registered as ${result.clientId}`);
    const held = result.heldTokenSha256 || [];
    assert(held.length > 0, 'the client reported no access token it held');
    assert(Array.isArray(result.seenHeaders) && result.seenHeaders.length > 0, `seen_headers answered ${JSON.stringify(result.seenHeaders)}`);
    assert(!result.seenHeaders.includes('authorization'), `a tool handler could read the caller's Authorization header: ${JSON.stringify(result.seenHeaders)}`);
    return {
      result,
      held,
      attempts: (await exchanges()).slice(exBefore),
      seen: api.seen.slice(seenBefore),
    };
  };

  /** The exchange worked: checked at the client, the downstream API and the provider. */
  const exchanged = async (client) => {
    const { result, held, attempts, seen } = await exchangeClient('ok', client);
    const answers = result.downstream.map((d, i) => {
      assert(!d.isError, `downstream_whoami call ${i + 1} failed: ${d.text}`);
      return JSON.parse(d.text);
    });
    assert(answers.length === 2, `the client made ${answers.length} downstream_whoami calls`);
    const [a, b] = answers;
    // Who the downstream API saw: the user, through the MCP server's client.
    assert(a.sub === rig.subject, `the downstream saw sub ${JSON.stringify(a.sub)}, the provider logged in ${rig.subject}`);
    assert(a.aud === downstream.audience, `the downstream saw aud ${JSON.stringify(a.aud)}, not ${downstream.audience}`);
    assert(a.client_id === ex.clientId, `the downstream saw client_id ${JSON.stringify(a.client_id)}, not the MCP server's ${ex.clientId}`);
    assert(a.act?.sub === ex.clientId, `the downstream saw act ${JSON.stringify(a.act)}, expected {"sub":"${ex.clientId}"} (RFC 8693 section 4.1)`);
    // No passthrough: the API never saw a token the client held.
    assert(!held.includes(a.token_sha256), 'the downstream API received the MCP client\'s own access token');
    assert(seen.length === 2, `the downstream API received ${seen.length} requests, expected 2`);
    for (const s of seen) {
      assert(s.accepted, `the downstream API refused a request: ${s.reason}`);
      assert(!held.includes(s.token_sha256), 'the downstream API received the MCP client\'s own access token');
    }
    // The cache: both calls used one exchanged token, exchanged once.
    assert(b.token_sha256 === a.token_sha256 && b.jti === a.jti, 'the second call used another downstream token: the exchanged token was not reused');
    assert(attempts.length === 1, `two calls cost ${attempts.length} exchange requests at the provider: ${JSON.stringify(attempts)}`);
    const [x] = attempts;
    assert(x.outcome === 'issued', `the provider refused the exchange: ${JSON.stringify(x)}`);
    assert(x.client_id === ex.clientId && x.sub === rig.subject && x.aud === downstream.audience,
      `the provider's exchange record is ${JSON.stringify(x)}`);
    assert(x.token_sha256 === a.token_sha256 && x.jti === a.jti, 'the downstream did not receive the token the provider issued in the exchange');
    // The subject token was the client's token for this server.
    const issued = await issuedTokens();
    const subjectToken = issued.find((t) => t.jti === x.subject_jti);
    assert(subjectToken && subjectToken.client_id === result.clientId && subjectToken.aud === ex.servers.ok.resource && subjectToken.sub === rig.subject,
      `the subject token of the exchange is ${JSON.stringify(subjectToken)}, not the client's token for ${ex.servers.ok.resource}`);
    const record = issued.find((t) => t.jti === x.jti);
    assert(record && record.aud === downstream.audience && record.act?.sub === ex.clientId,
      `the provider's record of the exchanged token is ${JSON.stringify(record)}`);
    return result;
  };

  await scenario(EXCHANGE_SCENARIOS.ok, () => exchanged('ts-sdk'));

  await scenario(EXCHANGE_SCENARIOS.python, async () => {
    const result = await exchanged('python-sdk');
    // The stateless revision: the tool calls came with Mcp-Method.
    assert(result.seenHeaders.includes('mcp-method') && !result.seenHeaders.includes('mcp-session-id'),
      `the Python SDK did not speak the stateless protocol: its tools saw ${JSON.stringify(result.seenHeaders)}`);
  });

  await scenario(EXCHANGE_SCENARIOS.concurrent, async () => {
    // A client of its own, so no exchanged token is cached for it yet.
    const client = await registerConfidentialClient('rig exchange concurrent');
    const token = await clientCredentialsToken(client, ex.servers.ok.resource);
    const exBefore = (await exchanges()).length;
    const seenBefore = downstream.seen.length;
    const N = 8;
    const answers = await Promise.all(Array.from({ length: N }, async (_, i) => {
      const res = await fetchT(ex.servers.ok.url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'downstream_whoami',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: i + 1,
          method: 'tools/call',
          params: {
            name: 'downstream_whoami',
            arguments: {},
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }),
      }, 20000);
      const text = await res.text();
      assert(res.status === 200, `call ${i + 1}: HTTP ${res.status} ${text.slice(0, 200)}`);
      // One JSON message, or the same as an event stream.
      const message = (res.headers.get('content-type') || '').startsWith('text/event-stream')
        ? JSON.parse(text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).find((d) => d.trim().startsWith('{')))
        : JSON.parse(text);
      const result = message.result;
      assert(result && !result.isError, `call ${i + 1}: ${JSON.stringify(message).slice(0, 300)}`);
      return JSON.parse(result.content.find((c) => c.type === 'text').text);
    }));
    const attempts = (await exchanges()).slice(exBefore);
    assert(attempts.length === 1 && attempts[0].outcome === 'issued' && attempts[0].sub === client.client_id,
      `${N} concurrent calls cost ${attempts.length} exchange requests: ${JSON.stringify(attempts)}`);
    assert(answers.every((a) => a.sub === client.client_id && a.token_sha256 === attempts[0].token_sha256),
      `the calls did not all use the one exchanged token: ${JSON.stringify(answers.map((a) => [a.sub, a.token_sha256]))}`);
    const seen = downstream.seen.slice(seenBefore);
    assert(seen.length === N && seen.every((s) => s.accepted && s.token_sha256 === attempts[0].token_sha256),
      `the downstream API saw ${JSON.stringify(seen)}`);
  });

  /**
   * The consent step-up: the client authorizes from the 401 without
   * downstream:consent; its first downstream_whoami makes the server
   * exchange, the provider refuses with consent_required, and the layer
   * answers the call with HTTP 403 insufficient_scope naming
   * downstream:consent and the caller's scopes; the client authorizes again
   * for them and the call is made again: one issued exchange, whose subject
   * token holds the consent, serves it and the second call.
   */
  const consented = async (client) => {
    const api = ex.consentApi;
    const mainSeenBefore = downstream.seen.length;
    const { result, held, attempts, seen } = await exchangeClient('consent', client, { mode: 'exchange-consent', api });
    const scopesOf = (s) => (s || '').split(' ').filter(Boolean);
    const sameSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
    assert(result.downstream.length === 2, `the client made ${result.downstream.length} downstream_whoami calls`);
    const [first, second] = result.downstream;
    for (const [i, d] of result.downstream.entries()) {
      assert(!d.isError, `downstream_whoami call ${i + 1} failed after the step-up: ${d.text}`);
    }
    // Two authorizations: from the 401 (no consent), from the 403 (consent).
    const requests = result.authorizationRequests || [];
    assert(requests.length === 2, `the client authorized ${requests.length} times, expected 2: ${JSON.stringify(requests)}`);
    assert(!scopesOf(requests[0].scope).includes(CONSENT_SCOPE), `the first authorization already asked for ${CONSENT_SCOPE}: ${requests[0].scope}`);
    for (const req of requests) {
      assert(req.resource === ex.servers.consent.resource, `an authorization named resource ${JSON.stringify(req.resource)}, not ${ex.servers.consent.resource}`);
    }
    // The provider: one consent_required refusal of the first token, then one
    // issued exchange of the second, nothing more (the second call is cached).
    assert(attempts.length === 2, `two calls cost ${attempts.length} exchange requests, expected a refusal and one exchange: ${JSON.stringify(attempts)}`);
    const [no, yes] = attempts;
    assert(no.outcome === 'refused' && no.error === 'consent_required' && no.client_id === ex.clientId
      && no.sub === rig.subject && no.aud === api.audience && typeof no.error_description === 'string' && no.error_description.length > 0,
    `the first exchange was not refused with consent_required: ${JSON.stringify(no)}`);
    assert(!scopesOf(no.subject_scope).includes(CONSENT_SCOPE), `the refused subject token held ${CONSENT_SCOPE}: ${no.subject_scope}`);
    assert(yes.outcome === 'issued' && yes.client_id === ex.clientId && yes.sub === rig.subject && yes.aud === api.audience,
      `the exchange after the step-up is ${JSON.stringify(yes)}`);
    assert(scopesOf(yes.subject_scope).includes(CONSENT_SCOPE), `the subject token of the issued exchange lacks ${CONSENT_SCOPE}: ${yes.subject_scope}`);
    // The 403: exactly one, insufficient_scope, naming the consent scope and
    // the caller's scopes (those of the refused token), with the metadata.
    assert(first.challenges.length === 1, `the first call met ${first.challenges.length} HTTP 403 challenges: ${JSON.stringify(first.challenges)}`);
    const challenge = parseChallenge(first.challenges[0]);
    assert(challenge?.error === 'insufficient_scope', `the 403 challenge is ${first.challenges[0]}`);
    const challenged = scopesOf(challenge.scope);
    const expected = [...new Set([CONSENT_SCOPE, ...scopesOf(no.subject_scope)])];
    assert(sameSet(challenged, expected), `the 403 challenge names scope ${JSON.stringify(challenge.scope)}, expected ${JSON.stringify(expected.join(' '))}`);
    assert(challenge.resource_metadata, 'the 403 challenge has no resource_metadata');
    assert(first.authorizations.length === 1 && challenged.every((x) => scopesOf(first.authorizations[0].scope).includes(x)),
      `the re-authorization asked for ${JSON.stringify(first.authorizations)}, not every challenged scope ${challenge.scope}`);
    assert(second.challenges.length === 0 && second.authorizations.length === 0,
      `the second call met ${JSON.stringify(second.challenges)} and authorized ${JSON.stringify(second.authorizations)}`);
    // The subject tokens: the client's two tokens for the consent server.
    const issued = await issuedTokens();
    const before = issued.find((t) => t.jti === no.subject_jti);
    const after = issued.find((t) => t.jti === yes.subject_jti);
    for (const t of [before, after]) {
      assert(t && t.client_id === result.clientId && t.aud === ex.servers.consent.resource && t.sub === rig.subject,
        `a subject token of the consent exchanges is ${JSON.stringify(t)}, not the client's token for ${ex.servers.consent.resource}`);
    }
    assert(before.jti !== after.jti, 'the exchange after the step-up used the refused token again');
    assert(scopesOf(after.scope).includes(CONSENT_SCOPE), `the provider's record of the second token has scope ${after.scope}`);
    // The API: the user, its own audience, the exchanged token, twice.
    const answers = result.downstream.map((d) => JSON.parse(d.text));
    const [a, b] = answers;
    assert(a.sub === rig.subject && a.aud === api.audience && a.client_id === ex.clientId && a.act?.sub === ex.clientId,
      `the consent API saw ${JSON.stringify({ ...a, token_sha256: undefined })}`);
    assert(a.token_sha256 === yes.token_sha256 && a.jti === yes.jti && b.token_sha256 === a.token_sha256 && b.jti === a.jti,
      'the calls did not use the one token of the issued exchange');
    const record = issued.find((t) => t.jti === yes.jti);
    assert(record && record.aud === api.audience && record.act?.sub === ex.clientId, `the provider's record of the exchanged token is ${JSON.stringify(record)}`);
    // No passthrough, and nothing reached the API before the consent.
    assert(held.length === 2, `the client held ${held.length} access tokens, expected 2 (before and after the step-up)`);
    assert(seen.length === 2 && seen.every((s) => s.accepted && s.token_sha256 === yes.token_sha256 && !held.includes(s.token_sha256)),
      `the consent API saw ${JSON.stringify(seen)}`);
    assert(downstream.seen.length === mainSeenBefore, 'the other downstream API was called during the consent scenario');
    rig.stepUpNotes.push(`${client} (consent through the token exchange): downstream_whoami: consent_required at the provider, 403 scope="${challenge.scope}", `
      + `re-authorization scope="${first.authorizations[0].scope}", one exchange after`);
    return result;
  };

  await scenario(EXCHANGE_SCENARIOS.consent, () => consented('ts-sdk'));

  await scenario(EXCHANGE_SCENARIOS.consentPython, () => consented('python-sdk'));

  /** A refused exchange: both calls are tool errors naming `code`, each one refusal at the provider. */
  const refused = async (name, code, aud) => {
    const { result, attempts, seen } = await exchangeClient(name);
    assert(result.downstream.length === 2, `the client made ${result.downstream.length} downstream_whoami calls`);
    for (const [i, d] of result.downstream.entries()) {
      assert(d.isError, `downstream_whoami call ${i + 1} succeeded: ${d.text}`);
      assert(d.text.startsWith(`${code}:`), `downstream_whoami call ${i + 1} answered ${JSON.stringify(d.text)}, not ${code}`);
    }
    // Refusals are not cached: each call asked again.
    assert(attempts.length === result.downstream.length, `${result.downstream.length} calls made ${attempts.length} exchange requests: ${JSON.stringify(attempts)}`);
    for (const x of attempts) {
      assert(x.outcome === 'refused' && x.error === code && x.client_id === ex.clientId,
        `the provider's exchange record is ${JSON.stringify(x)}, expected a ${code} refusal of ${ex.clientId}`);
      if (aud) assert(x.sub === rig.subject && x.aud === aud, `the refused exchange was for ${x.sub} and ${x.aud}`);
    }
    assert(seen.length === 0, `the downstream API was called ${seen.length} times after a refused exchange`);
  };

  await scenario(EXCHANGE_SCENARIOS.target, async () => {
    await refused('target', 'invalid_target', ex.refusedAudience);
  });

  await scenario(EXCHANGE_SCENARIOS.secret, async () => {
    await refused('secret', 'invalid_client');
  });

  await scenario(EXCHANGE_SCENARIOS.provider, async () => {
    const auth = basic(ex.clientId, ex.clientSecret);
    const user = await registerConfidentialClient('rig exchange subject');
    const subject = await clientCredentialsToken(user, ex.servers.ok.resource);
    const form = (extra = {}) => ({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subject,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: downstream.audience,
      ...extra,
    });
    // The baseline: accepted, and the answer is RFC 8693 section 2.2.1.
    const [status, ok] = await tokenRequest(auth, form({ scope: 'downstream:write' }));
    assert(status === 200 && ok.access_token, `the exchange was refused: HTTP ${status} ${JSON.stringify(ok)}`);
    assert(ok.issued_token_type === ACCESS_TOKEN_TYPE && ok.token_type === 'Bearer' && ok.expires_in === 300 && ok.scope === 'downstream:write',
      `the answer is ${JSON.stringify({ ...ok, access_token: undefined })}`);
    const h = jwtPart(ok.access_token, 0);
    const p = jwtPart(ok.access_token, 1);
    assert(h.typ === 'at+jwt' && h.alg === 'ES256', `the exchanged token's header is ${JSON.stringify(h)}`);
    assert(p.sub === user.client_id && p.aud === downstream.audience && p.client_id === ex.clientId && p.act?.sub === ex.clientId && p.iss === rig.issuer,
      `the exchanged token's claims are ${JSON.stringify(p)}`);
    // The API takes it, and refuses what a passthrough would send.
    const call = (token) => fetchT(downstream.url, { headers: { authorization: `Bearer ${token}` } });
    const accepted = await call(ok.access_token);
    assert(accepted.status === 200 && (await accepted.json()).sub === user.client_id, `the downstream API answered HTTP ${accepted.status} to the exchanged token`);
    const passthrough = await call(subject);
    assert(passthrough.status === 401, `the downstream API answered HTTP ${passthrough.status} to a token for the MCP server`);
    // The consent API: refused without the consent scope (a hostile case
    // below), issued with it, and only its own audience is accepted there.
    const consenting = await clientCredentialsToken(user, ex.servers.ok.resource, `notes:read ${CONSENT_SCOPE}`);
    const [consentStatus, consentOk] = await tokenRequest(auth, form({ subject_token: consenting, audience: ex.consentApi.audience }));
    assert(consentStatus === 200 && consentOk.access_token && jwtPart(consentOk.access_token, 1).aud === ex.consentApi.audience,
      `the exchange for the consent API with ${CONSENT_SCOPE} was refused: HTTP ${consentStatus} ${JSON.stringify({ ...consentOk, access_token: undefined })}`);
    const consentCall = await fetchT(ex.consentApi.url, { headers: { authorization: `Bearer ${consentOk.access_token}` } });
    assert(consentCall.status === 200, `the consent API answered HTTP ${consentCall.status} to its exchanged token`);
    const crossed = await fetchT(ex.consentApi.url, { headers: { authorization: `Bearer ${ok.access_token}` } });
    assert(crossed.status === 401, `the consent API answered HTTP ${crossed.status} to a token for the other API`);

    const forged = (() => {
      const [hh, pp, sig] = subject.split('.');
      const bytes = Buffer.from(sig, 'base64url');
      bytes[5] ^= 1;
      return `${hh}.${pp}.${bytes.toString('base64url')}`;
    })();
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${subject.split('.')[1]}.`;
    const otherServerToken = await clientCredentialsToken(user, rig.resource);
    const other = await registerConfidentialClient('rig exchange other client');
    const meta = await providerMetadata();
    const withGrant = await (await fetchT(meta.registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'rig exchange impostor',
        grant_types: ['client_credentials', TOKEN_EXCHANGE],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    })).json();
    assert(withGrant.client_id, `registering a client with the exchange grant failed: ${JSON.stringify(withGrant)}`);

    const cases = [
      ['a token for another MCP server', auth, form({ subject_token: otherServerToken }), 400, 'invalid_grant'],
      ['the exchanged token itself (aud = the API)', auth, form({ subject_token: ok.access_token }), 400, 'invalid_grant'],
      ['a forged signature', auth, form({ subject_token: forged }), 400, 'invalid_grant'],
      ['an unsigned token (alg none)', auth, form({ subject_token: unsigned }), 400, 'invalid_grant'],
      ['not a JWT', auth, form({ subject_token: 'not-a-token' }), 400, 'invalid_grant'],
      ['subject_token_type id_token', auth, form({ subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), 400, 'invalid_request'],
      ['no subject_token_type', auth, form({ subject_token_type: '' }), 400, 'invalid_request'],
      ['no subject_token', auth, form({ subject_token: '' }), 400, 'invalid_request'],
      ['an actor_token', auth, form({ actor_token: subject, actor_token_type: ACCESS_TOKEN_TYPE }), 400, 'invalid_request'],
      ['requested_token_type refresh_token', auth, form({ requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), 400, 'invalid_request'],
      ['a look-alike audience (/admin)', auth, form({ audience: ex.refusedAudience }), 400, 'invalid_target'],
      ['the audience with a trailing slash', auth, form({ audience: `${downstream.audience}/` }), 400, 'invalid_target'],
      ['the audience in upper case', auth, form({ audience: downstream.audience.toUpperCase() }), 400, 'invalid_target'],
      ['the MCP server as the audience', auth, form({ audience: ex.servers.ok.resource }), 400, 'invalid_target'],
      ['audience and resource naming two APIs', auth, [...Object.entries(form()), ['resource', ex.refusedAudience]], 400, 'invalid_target'],
      ['no audience nor resource', auth, form({ audience: '' }), 400, 'invalid_request'],
      ['the consent API without downstream:consent', auth, form({ audience: ex.consentApi.audience }), 400, 'consent_required'],
      ['the consent API as resource, without downstream:consent', auth, form({ audience: '', resource: ex.consentApi.audience }), 400, 'consent_required'],
      ['the consent API, downstream:consent asked in the exchange', auth, form({ audience: ex.consentApi.audience, scope: CONSENT_SCOPE }), 400, 'invalid_scope'],
      ['a scope of the MCP server', auth, form({ scope: 'notes:write' }), 400, 'invalid_scope'],
      ['one allowed and one unknown scope', auth, form({ scope: 'downstream:read downstream:admin' }), 400, 'invalid_scope'],
      ['subject_token twice', auth, [...Object.entries(form()), ['subject_token', otherServerToken]], 400, 'invalid_request'],
      ['a wrong client secret', basic(ex.clientId, 'wrong'), form(), 401, 'invalid_client'],
      ['a wrong secret in the body (client_secret_post)', undefined, form({ client_id: ex.clientId, client_secret: 'wrong' }), 401, 'invalid_client'],
      ['no client authentication', undefined, form({ client_id: ex.clientId }), 401, 'invalid_client'],
      ['another client that registered the grant', basic(withGrant.client_id, withGrant.client_secret), form(), 400, 'unauthorized_client'],
      ['another client without the grant', basic(other.client_id, other.client_secret), form(), 400, 'invalid_request'],
    ];
    const before = (await exchanges()).length;
    for (const [label, authorization, body, wantStatus, wantError] of cases) {
      const clean = Array.isArray(body) ? body : Object.entries(body).filter(([, v]) => v !== '');
      const [got, answer] = await tokenRequest(authorization, clean);
      assert(got === wantStatus && answer.error === wantError && !answer.access_token,
        `${label}: HTTP ${got} ${JSON.stringify({ ...answer, access_token: answer.access_token && '[redacted]' }).slice(0, 300)}, expected HTTP ${wantStatus} ${wantError}`);
      assert(typeof answer.error_description === 'string' && answer.error_description.length > 0, `${label}: no error_description`);
    }
    const logged = (await exchanges()).slice(before);
    assert(logged.length === cases.length && logged.every((x) => x.outcome === 'refused'),
      `the provider recorded ${logged.length} attempts (${logged.filter((x) => x.outcome !== 'refused').length} not refused) for ${cases.length} hostile requests`);
  });
}

// A real DPoP client against the protected server: panva's oauth4webapi
// (RFC 9449 proofs, nonce handling) obtains a DPoP-bound access token from
// the rig's oidc-provider and signs a proof for every MCP request; the
// TypeScript SDK's MCP client speaks MCP over it (its `fetch` option).
//
//   node dpop.mjs MCP_URL
//
// Environment: RIG_ISSUER (the provider), RIG_CC_CLIENT_ID and
// RIG_CC_CLIENT_SECRET (a confidential client registered beforehand, client
// credentials grant). RIG_EXPECT_NONCE=1: the server demands DPoP nonces, so
// at least one `use_dpop_nonce` retry must happen.
//
// After the MCP calls it attacks the server with what it holds, on raw HTTP:
// the bound token presented as Bearer, a proof replayed as it was sent, a
// proof signed by another key, a proof for another method. Each answer is
// reported; the rig asserts on them.
//
// Prints one line `RIG-RESULT {json}` on success; exits non-zero otherwise.

import * as oauth from 'oauth4webapi';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [mcpUrl] = process.argv.slice(2);
const { RIG_ISSUER, RIG_CC_CLIENT_ID, RIG_CC_CLIENT_SECRET } = process.env;
if (!mcpUrl || !RIG_ISSUER || !RIG_CC_CLIENT_ID || !RIG_CC_CLIENT_SECRET) {
  console.error('usage: RIG_ISSUER=... RIG_CC_CLIENT_ID=... RIG_CC_CLIENT_SECRET=... dpop.mjs MCP_URL');
  process.exit(2);
}
const expectNonce = process.env.RIG_EXPECT_NONCE === '1';
// Loopback over plain HTTP is the rig's whole world.
const insecure = { [oauth.allowInsecureRequests]: true };

const newKeyPair = () => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);

// --- the token: client credentials with a DPoP proof at the token endpoint.
const issuer = new URL(RIG_ISSUER);
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }));
const client = { client_id: RIG_CC_CLIENT_ID };
const clientAuth = oauth.ClientSecretBasic(RIG_CC_CLIENT_SECRET);
const keyPair = await newKeyPair();
const dpop = oauth.DPoP(client, keyPair);
const thumbprint = await dpop.calculateThumbprint();

async function tokenRequest(retried = false) {
  const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, {
    resource: mcpUrl,
    scope: 'notes:read notes:write notes:private',
  }, { ...insecure, DPoP: dpop });
  try {
    return await oauth.processClientCredentialsResponse(as, client, res);
  } catch (err) {
    if (!retried && oauth.isDPoPNonceError(err)) return tokenRequest(true);
    throw err;
  }
}
const tokens = await tokenRequest();
const accessToken = tokens.access_token;
const claims = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url'));

// --- MCP over DPoP: every request the SDK makes gets a fresh proof.
let nonceRetries = 0;
let lastSent; // the last request as sent: for the replay below
const recordingFetch = async (url, init) => {
  if (String(url).startsWith(mcpUrl)) lastSent = { url: String(url), ...init };
  return fetch(url, init);
};
async function dpopFetch(url, init = {}, retried = false) {
  const headers = new Headers(init.headers);
  headers.delete('authorization');
  try {
    return await oauth.protectedResourceRequest(accessToken, init.method || 'GET', new URL(url), headers, init.body, {
      ...insecure,
      DPoP: dpop,
      signal: init.signal,
      [oauth.customFetch]: recordingFetch,
    });
  } catch (err) {
    if (!retried && oauth.isDPoPNonceError(err)) {
      nonceRetries += 1;
      return dpopFetch(url, init, true);
    }
    // Any other challenge (insufficient_scope, ...) is the MCP client's to handle.
    if (err instanceof oauth.WWWAuthenticateChallengeError) return err.response;
    throw err;
  }
}

const mcp = new Client({ name: 'rig-dpop', version: '1.0.0' });
await mcp.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: dpopFetch }));
const tools = await mcp.listTools();
const whoamiResult = await mcp.callTool({ name: 'whoami', arguments: {} });
const whoami = JSON.parse(whoamiResult.content?.[0]?.text ?? 'null');
const added = await mcp.callTool({ name: 'add_note', arguments: { text: 'sent with a DPoP proof' } });
const listed = await mcp.callTool({ name: 'list_notes', arguments: {} });
await mcp.close();

// --- attacks on raw HTTP, with what this client holds.
const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'rig-dpop-attack', version: '1' } },
});
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const answer = async (res) => {
  const body = await res.json().catch(() => ({}));
  return {
    status: res.status,
    challenges: res.headers.get('www-authenticate') ?? undefined,
    error: body.error,
    description: body.error_description,
  };
};

// 1. The DPoP-bound token presented as a Bearer token (RFC 9449 section 7.2).
const asBearer = await answer(await fetch(mcpUrl, {
  method: 'POST', headers: { ...mcpHeaders, authorization: `Bearer ${accessToken}` }, body: initialize,
}));

// 2. The last proof the SDK's request carried, sent again unchanged.
const replayed = await answer(await fetch(lastSent.url, {
  method: lastSent.method, headers: lastSent.headers, body: lastSent.body,
}));

// 3. A proof signed by a key the token is not bound to (section 4.3 step 12).
// With `send` false the proof is made and never sent, so it is still unused.
async function proofFrom(handle, method, send = false) {
  const headers = new Headers(mcpHeaders);
  let sent;
  const capture = async (url, init) => {
    sent = init.headers;
    return send ? fetch(url, init) : new Response(null, { status: 204 });
  };
  try {
    await oauth.protectedResourceRequest(accessToken, method, new URL(mcpUrl), headers, method === 'POST' ? initialize : undefined, {
      ...insecure, DPoP: handle, [oauth.customFetch]: capture,
    });
  } catch {
    // The answer is judged below, from what was sent.
  }
  return sent.dpop;
}
const otherKey = oauth.DPoP(client, await newKeyPair());
// A nonce the server handed out is cached per handle; reuse it for the
// stranger's handle, so the key is the only difference.
await proofFrom(otherKey, 'POST', true);
const wrongKey = await answer(await fetch(mcpUrl, {
  method: 'POST',
  headers: { ...mcpHeaders, authorization: `DPoP ${accessToken}`, dpop: await proofFrom(otherKey, 'POST') },
  body: initialize,
}));

// 4. A fresh proof of the right key, but signed for GET, sent with a POST.
const wrongMethod = await answer(await fetch(mcpUrl, {
  method: 'POST',
  headers: { ...mcpHeaders, authorization: `DPoP ${accessToken}`, dpop: await proofFrom(dpop, 'GET') },
  body: initialize,
}));

if (expectNonce && nonceRetries === 0) {
  console.error('the server demands nonces, yet no use_dpop_nonce retry happened');
  process.exit(1);
}

console.log(`RIG-RESULT ${JSON.stringify({
  tokenType: tokens.token_type,
  cnfJkt: claims.cnf?.jkt,
  thumbprint,
  subject: whoami?.subject,
  clientId: whoami?.client_id,
  issuer: whoami?.issuer,
  dpopJkt: whoami?.dpop_jkt,
  tools: tools.tools.map((t) => t.name),
  addNoteError: !!added.isError,
  notes: JSON.parse(listed.content?.[0]?.text ?? '{}').notes,
  nonceRetries,
  attacks: { asBearer, replayed, wrongKey, wrongMethod },
})}`);

// The interop rig's orchestrator (run.sh installs everything, then runs this
// with Node 22).
//
// Starts, on loopback and ephemeral ports: an https host for Client ID
// Metadata Documents (self-signed), the OpenID provider (rig/provider.mjs),
// the reference server (examples/protected_server.rs) and, when a token
// exchange scenario is selected, the downstream API and the reference servers
// of rig/exchange.mjs. Then runs each client
// and scenario, printing `PASS name`, `FAIL name: reason` or `SKIP name:
// reason` per line and closing with `N passed, N failed`. Exit status 1 when
// anything failed. Every child runs in its own process group and is killed on
// the way out.
//
// Options: --only SUBSTRING (repeatable) runs only the matching scenarios.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  fetchT, freePort, reservedPort, killAll, killAllSync, parseChallenge, recordProcessGroupsIn, rigResult, run,
  startService, tail,
} from './lib.mjs';
import { conformanceScenarios } from './conformance.mjs';
import {
  EXCHANGE_SCENARIOS, exchangeScenarios, prepareExchange, startExchangeServers,
} from './exchange.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const REPO = path.resolve(ROOT, '..');
const LOGS = process.env.RIG_LOGS || path.join(ROOT, 'logs');
const NODE = process.execPath;
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
// Cargo's target directory: CARGO_TARGET_DIR when set (relative to the
// repository, as cargo reads it there), else the repository's `target`.
const TARGET_DIR = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
const SERVER_BIN = process.env.RIG_SERVER_BIN || path.join(TARGET_DIR, 'debug', 'examples', 'protected_server');
const INTEROP_TARGET = process.env.RIG_INTEROP_TARGET || path.join(REPO, 'target', 'interop');
const RMCP_CLIENT_BIN = path.join(INTEROP_TARGET, 'debug', 'rig-rmcp-client');
const BROWSER = path.join(HERE, 'browser');
const INSPECTOR = path.join(ROOT, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');

const only = [];
for (let i = 2; i < process.argv.length; i += 1) {
  if (process.argv[i] === '--only') only.push(process.argv[(i += 1)]);
}
const selected = (name) => only.length === 0 || only.some((o) => name.includes(o));

const results = [];
function report(name, outcome, reason) {
  results.push({ name, outcome, reason });
  const line = outcome === 'PASS' ? `PASS ${name}` : `${outcome} ${name}: ${reason}`;
  console.log(line);
}

/** Runs one scenario: `fn` returns nothing (pass), throws (fail) or returns {skip}. */
async function scenario(name, fn) {
  if (!selected(name)) return;
  const started = Date.now();
  try {
    const r = await fn();
    if (r?.skip) report(name, 'SKIP', r.skip);
    else report(name, 'PASS');
  } catch (err) {
    report(name, 'FAIL', String(err?.message || err).replace(/\s+/g, ' ').slice(0, 700));
  }
  if (process.env.RIG_VERBOSE) console.error(`  (${name}: ${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const slug = (name) => name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '');

// ---------------------------------------------------------------------------
// The fixture: provider, reference server, CIMD host.

const rig = {
  subject: `user-${randomBytes(6).toString('hex')}`,
  cimdFetches: 0,
  stepUpNotes: [],
};

function selfSignedCertificate() {
  const key = path.join(LOGS, 'cimd-key.pem');
  const cert = path.join(LOGS, 'cimd-cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
  return { key: readFileSync(key), cert: readFileSync(cert), certFile: cert };
}

/** The https host serving Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document). */
async function startCimdHost() {
  const tls = selfSignedCertificate();
  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const m = req.url.match(/^\/clients\/([a-z0-9-]+)\.json$/);
    if (req.method !== 'GET' || !m) {
      res.writeHead(404).end();
      return;
    }
    rig.cimdFetches += 1;
    const clientId = `${rig.cimdOrigin}/clients/${m[1]}.json`;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({
      client_id: clientId,
      client_name: `rig ${m[1]}`,
      // A native client: any loopback port is accepted (RFC 8252 section 7.3).
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  rig.cimdServer = server;
  rig.cimdOrigin = `https://127.0.0.1:${server.address().port}`;
  rig.cimdCertFile = tls.certFile;
}

async function startProvider(resources, extraEnv = {}) {
  const { match } = await startService('provider', NODE, [path.join(HERE, 'provider.mjs')], {
    env: {
      ...process.env,
      RIG_SUBJECT: rig.subject,
      RIG_RESOURCES: resources.join(','),
      RIG_CIMD_CA: rig.cimdCertFile,
      RIG_CIMD_ORIGIN: rig.cimdOrigin,
      ...extraEnv,
    },
    cwd: ROOT,
    log: path.join(LOGS, 'provider.log'),
    ready: /^issuer (\S+)$/m,
    timeoutMs: 30000,
  });
  rig.issuer = match[1];
}

/**
 * Starts a server that must know its own URL before it binds: retries on a
 * lost port race, on another port, unless `retry` is false (a port others
 * were told about).
 */
async function startResourceServer(name, bin, port, resource, extraEnv = {}, args = [], { retry = true } = {}) {
  let lastError;
  for (let attempt = 0; attempt < (retry ? 3 : 1); attempt += 1) {
    const p = attempt === 0 ? port : await freePort();
    const url = resource(p);
    try {
      await startService(name, bin, args, {
        env: {
          ...process.env,
          MCP_OAUTH2_ISSUER: rig.issuer,
          MCP_OAUTH2_RESOURCE: url,
          MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK: '1',
          MCP_OAUTH2_BIND: `127.0.0.1:${p}`,
          RUST_LOG: process.env.RUST_LOG || 'info',
          ...extraEnv,
        },
        cwd: REPO,
        log: path.join(LOGS, `${name}.log`),
        ready: /listening on (\S+)/,
        timeoutMs: 30000,
      });
      return url;
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

// ---------------------------------------------------------------------------
// Provider helpers: registration and tokens, as the rig's own OAuth client.

async function providerMetadata() {
  if (!rig.asMetadata) {
    const res = await fetchT(`${rig.issuer}/.well-known/openid-configuration`);
    rig.asMetadata = await res.json();
  }
  return rig.asMetadata;
}

async function registerConfidentialClient(name) {
  const meta = await providerMetadata();
  const res = await fetchT(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: name,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const body = await res.json();
  assert(res.status === 201, `registration failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function clientCredentialsToken(client, resource, scope = 'notes:read') {
  const meta = await providerMetadata();
  const res = await fetchT(meta.token_endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
  });
  const body = await res.json();
  assert(res.ok && body.access_token, `token request failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

const jwtPayload = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
const jwtHeader = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));

async function issuedTokens() {
  const res = await fetchT(`${rig.issuer}/_rig/issued`);
  return res.json();
}

/** An MCP initialize POST with the given Authorization header value (or none). */
function mcpPost(url, authorization) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (authorization) headers.authorization = authorization;
  return fetchT(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'rig', version: '1' } },
    }),
  });
}

// ---------------------------------------------------------------------------
// Checks shared by the client scenarios.

/**
 * The identity a client got back from `whoami` is the one the provider
 * issued: same subject, issuer and client, and the provider did issue that
 * client a token for this resource.
 */
async function checkIdentity(result, { subject, clientId }) {
  assert(result, 'the client printed no RIG-RESULT line');
  const tools = result.tools || [];
  for (const t of ['whoami', 'list_notes', 'add_note']) assert(tools.includes(t), `tools/list lacks ${t}: ${JSON.stringify(tools)}`);
  const who = result.whoami || {};
  const expectedClient = clientId ?? result.clientId;
  assert(who.subject === (subject ?? rig.subject), `whoami.subject is ${JSON.stringify(who.subject)}, the provider issued ${JSON.stringify(subject ?? rig.subject)}`);
  assert(who.issuer === rig.issuer, `whoami.issuer is ${JSON.stringify(who.issuer)}, expected ${rig.issuer}`);
  assert(expectedClient && who.client_id === expectedClient, `whoami.client_id is ${JSON.stringify(who.client_id)}, the client registered as ${JSON.stringify(expectedClient)}`);
  const tokens = await issuedTokens();
  const match = tokens.find((t) => t.client_id === who.client_id && t.sub === who.subject && t.aud === rig.resource);
  assert(match, `the provider issued no token for ${rig.resource} to client ${who.client_id} with subject ${who.subject}`);
  for (const req of result.authorizationRequests || []) {
    assert(req.resource === rig.resource, `the authorization request named resource ${JSON.stringify(req.resource)}, not ${rig.resource}`);
  }
}

/**
 * The step-up flow: a 403 with error="insufficient_scope" naming the scope
 * add_note needs (notes:write), a second authorization asking for at least
 * that, and then both add_note and list_notes succeed (read is not lost).
 * Whether the challenge or the client supplies the union with the scopes held
 * before is recorded in the log, not required: the 2026-07-28 revision moves
 * that accumulation to the client, and notes:write implies notes:read here.
 */
async function checkStepUp(name, result, challengeHeaders) {
  const headers = challengeHeaders ?? (result.exchanges || []).filter((e) => e.status === 403).map((e) => e.wwwAuthenticate);
  const forbidden = headers.map(parseChallenge).find((c) => c?.error === 'insufficient_scope');
  assert(forbidden, `no HTTP 403 with error="insufficient_scope" from the server (responses: ${JSON.stringify((result.exchanges || []).map((e) => e.status))})`);
  const challenged = (forbidden.scope || '').split(' ').filter(Boolean);
  assert(challenged.includes('notes:write'), `the 403 challenge's scope is ${JSON.stringify(forbidden.scope)}: it does not name notes:write`);
  assert(forbidden.resource_metadata, 'the 403 challenge has no resource_metadata');
  const second = (result.authorizationRequests || [])[1];
  assert(second, 'the client did not authorize a second time');
  const asked = (second.scope || '').split(' ');
  assert(challenged.every((s) => asked.includes(s)), `the second authorization asked for ${JSON.stringify(second.scope)}, not every scope of the challenge ${JSON.stringify(forbidden.scope)}`);
  assert(/"added":\s*true/.test(result.addNote || ''), `add_note did not succeed after step-up: ${result.addNote}`);
  assert(Array.isArray(result.notes?.notes) && result.notes.notes.length > 0, `list_notes after step-up: ${JSON.stringify(result.notes)}`);
  const tokens = await issuedTokens();
  assert(tokens.some((t) => t.sub === rig.subject && t.aud === rig.resource && (t.scope || '').split(' ').includes('notes:write')),
    'the provider issued no notes:write token for the resource');
  const union = ['notes:read', 'notes:write'];
  rig.stepUpNotes.push(`${name}: 403 challenge scope="${forbidden.scope}" (${union.every((s) => challenged.includes(s)) ? 'union' : 'operation only'}); `
    + `second authorization scope="${second.scope}" (${union.every((s) => asked.includes(s)) ? 'union' : 'no union'})`);
}

/**
 * The scopes each step of the computed and late step-up must be challenged
 * for, exactly: read_note from the private folder needs notes:private on top
 * of the tool's notes:read (computed from the arguments, before dispatch);
 * export_notes asks for notes:export from inside its handler (late step-up).
 */
const COMPUTED_LATE_STEPS = [
  { tool: 'read_note', scopes: ['notes:read', 'notes:private'], added: 'notes:private' },
  { tool: 'export_notes', scopes: ['notes:read', 'notes:export'], added: 'notes:export' },
];

const sameSet = (a, b) => a.length === b.length && a.every((s) => b.includes(s));

/**
 * The computed and late step-up: after authorizing with the base scope, the
 * client calls read_note on the private folder, then export_notes. Each call
 * must meet an HTTP 403 whose insufficient_scope challenge names exactly the
 * scopes of COMPUTED_LATE_STEPS, lead to a new authorization asking for at
 * least those, and end in a tool result (not an error): a read_note answer
 * for the private folder, and an export in the server's format.
 */
async function checkComputedLateStepUp(name, result) {
  const requests = result.authorizationRequests || [];
  const first = (requests[0]?.scope || '').split(' ');
  assert(requests[0] && !first.includes('notes:private') && !first.includes('notes:export'),
    `the first authorization asked for ${JSON.stringify(requests[0]?.scope)}: not the base scope, nothing to step up from`);
  const steps = result.steps || [];
  assert(steps.length === COMPUTED_LATE_STEPS.length, `the client reported ${steps.length} steps: ${JSON.stringify(steps)}`);
  const notes = [];
  for (const [i, want] of COMPUTED_LATE_STEPS.entries()) {
    const step = steps[i];
    assert(step.tool === want.tool, `step ${i + 1} called ${step.tool}, not ${want.tool}`);
    const challenges = (step.challenges || []).map(parseChallenge);
    assert(challenges.length > 0, `${want.tool}: no HTTP 403 from the server before the result`);
    for (const c of challenges) {
      assert(c?.error === 'insufficient_scope', `${want.tool}: a 403 whose challenge is not insufficient_scope: ${JSON.stringify(step.challenges)}`);
      const scopes = (c.scope || '').split(' ').filter(Boolean);
      assert(sameSet(scopes, want.scopes), `${want.tool}: the 403 challenge's scope is ${JSON.stringify(c.scope)}, expected exactly ${JSON.stringify(want.scopes.join(' '))}`);
      assert(c.resource_metadata, `${want.tool}: the 403 challenge has no resource_metadata`);
    }
    const auths = step.authorizations || [];
    assert(auths.length > 0, `${want.tool}: the client did not authorize again after the 403`);
    const last = auths[auths.length - 1];
    const asked = (last.scope || '').split(' ');
    assert(want.scopes.every((s) => asked.includes(s)), `${want.tool}: the re-authorization asked for ${JSON.stringify(last.scope)}, not every scope of ${JSON.stringify(want.scopes.join(' '))}`);
    assert(last.resource === rig.resource, `${want.tool}: the re-authorization named resource ${JSON.stringify(last.resource)}`);
    const kept = i > 0 && COMPUTED_LATE_STEPS.slice(0, i).every((w) => asked.includes(w.added)) ? ' (keeps the earlier step-up)' : '';
    notes.push(`${want.tool}: 403 scope="${challenges[0].scope}", re-authorization scope="${last.scope}"${kept}`);
  }
  const [read, exported] = steps.map((s) => s.result);
  assert(read && read.folder === 'private' && read.id === 1 && typeof read.found === 'boolean',
    `read_note after step-up is not a read_note result for private/1: ${JSON.stringify(read)}`);
  assert(exported && exported.format === 'mcp-oauth2-notes/1' && Array.isArray(exported.notes),
    `export_notes after step-up is not an export: ${JSON.stringify(exported)}`);
  // The same store, seen twice: the private note 1 is the export's first.
  assert(read.found ? exported.notes[0] === read.text : exported.notes.length === 0,
    `read_note (${JSON.stringify(read)}) and export_notes (${JSON.stringify(exported.notes)}) disagree`);
  // The token the session ends with carries the last step-up's scope.
  const final = result.whoamiAfter ?? result.whoami;
  assert((final?.scopes || []).includes('notes:export'), `the last token's scopes are ${JSON.stringify(final?.scopes)}, without notes:export`);
  const clientId = result.whoami?.client_id;
  const tokens = (await issuedTokens()).filter((t) => t.client_id === clientId && t.sub === rig.subject && t.aud === rig.resource);
  for (const want of COMPUTED_LATE_STEPS) {
    assert(tokens.some((t) => (t.scope || '').split(' ').includes(want.added)),
      `the provider issued client ${clientId} no ${want.added} token for the resource`);
  }
  rig.stepUpNotes.push(`${name} (computed and late): ${notes.join('; ')}`);
}

function failure(name, r) {
  if (r.timedOut) return `${name} timed out`;
  return `${name} exited ${r.signal || r.code}: ${tail(r.stderr || r.stdout)}`;
}

/** Runs a client program and returns its RIG-RESULT, or throws with its output. */
async function runClient(name, cmd, args, { env = {}, timeoutMs = 60000, stdin } = {}) {
  const r = await run(cmd, args, {
    env: { ...process.env, RIG_NODE: NODE, RIG_BROWSER: BROWSER, ...env },
    cwd: ROOT,
    log: path.join(LOGS, `${slug(name)}.log`),
    timeoutMs,
    stdin,
  });
  const result = (() => { try { return rigResult(r.stdout); } catch { return undefined; } })();
  if (r.code !== 0 || !result) throw new Error(failure(name, r));
  return result;
}

// ---------------------------------------------------------------------------
// Scenarios.

async function scenarios() {
  const RES = rig.resource;

  await scenario('discovery: 401 challenge and RFC 9728 metadata', async () => {
    const res = await mcpPost(RES);
    assert(res.status === 401, `a request without a token got HTTP ${res.status}`);
    const c = parseChallenge(res.headers.get('www-authenticate'));
    assert(c?.resource_metadata, `no resource_metadata in ${res.headers.get('www-authenticate')}`);
    const prm = await (await fetchT(c.resource_metadata)).json();
    assert(prm.resource === RES, `metadata resource ${prm.resource} != ${RES}`);
    assert((prm.authorization_servers || []).includes(rig.issuer), `authorization_servers ${JSON.stringify(prm.authorization_servers)} lacks ${rig.issuer}`);
  });

  await scenario('provider: JWT access tokens are RFC 9068 (typ at+jwt, aud = resource)', async () => {
    const client = await registerConfidentialClient('rig token check');
    const token = await clientCredentialsToken(client, RES);
    const h = jwtHeader(token);
    const p = jwtPayload(token);
    assert(h.typ === 'at+jwt', `typ is ${h.typ}`);
    assert(p.aud === RES && p.iss === rig.issuer, `aud ${p.aud}, iss ${p.iss}`);
    const ok = await mcpPost(RES, `Bearer ${token}`);
    assert(ok.status === 200, `the server refused the provider's token: HTTP ${ok.status} ${ok.headers.get('www-authenticate')}`);
  });

  await scenario('ts-sdk: authorization code + PKCE, dynamic registration', async () => {
    const result = await runClient('ts-sdk dcr', NODE, ['clients/ts-sdk.mjs', 'dcr', RES]);
    await checkIdentity(result, {});
  });

  /** A client whose client_id is a Client ID Metadata Document on the rig's https host. */
  const cimdScenario = (label, doc, cmd, args) => scenario(`${label}: authorization code + PKCE, Client ID Metadata Document`, async () => {
    const cimdUrl = `${rig.cimdOrigin}/clients/${doc}.json`;
    const before = rig.cimdFetches;
    const result = await runClient(`${label} cimd`, cmd, args, { env: { RIG_CIMD_URL: cimdUrl } });
    assert(result.clientId === cimdUrl, `the client used client_id ${result.clientId}, not the CIMD URL`);
    assert(rig.cimdFetches > before, 'the provider never fetched the metadata document');
    await checkIdentity(result, { clientId: cimdUrl });
  });

  await cimdScenario('ts-sdk', 'ts-sdk', NODE, ['clients/ts-sdk.mjs', 'cimd', RES]);

  await scenario('ts-sdk: client credentials', async () => {
    const client = await registerConfidentialClient('rig ts-sdk client-credentials');
    const result = await runClient('ts-sdk client-credentials', NODE, ['clients/ts-sdk.mjs', 'client-credentials', RES], {
      env: { RIG_CC_CLIENT_ID: client.client_id, RIG_CC_CLIENT_SECRET: client.client_secret },
    });
    // RFC 9068 section 2.2: with no resource owner, sub is the client.
    await checkIdentity(result, { subject: client.client_id, clientId: client.client_id });
  });

  await scenario('ts-sdk: step-up (403 insufficient_scope, re-authorize, succeed)', async () => {
    const r = await run(NODE, ['clients/ts-sdk.mjs', 'step-up', RES], {
      env: { ...process.env, RIG_NODE: NODE, RIG_BROWSER: BROWSER },
      cwd: ROOT,
      log: path.join(LOGS, 'ts-sdk-step-up.log'),
      timeoutMs: 60000,
    });
    const result = rigResult(r.stdout);
    if (!result) throw new Error(failure('ts-sdk step-up', r));
    await checkStepUp('ts-sdk', result);
    await checkIdentity(result, {});
  });

  await scenario('ts-sdk: computed and late step-up (read_note private, export_notes)', async () => {
    const result = await runClient('ts-sdk step-up-computed-late', NODE, ['clients/ts-sdk.mjs', 'step-up-computed-late', RES]);
    await checkComputedLateStepUp('ts-sdk', result);
    await checkIdentity(result, {});
  });

  await scenario('python-sdk: authorization code + PKCE, dynamic registration', async () => {
    const result = await runClient('python-sdk dcr', PYTHON, ['clients/python_sdk.py', 'dcr', RES]);
    await checkIdentity(result, {});
  });

  await cimdScenario('python-sdk', 'python-sdk', PYTHON, ['clients/python_sdk.py', 'cimd', RES]);

  await scenario('python-sdk: step-up (403 insufficient_scope, re-authorize, succeed)', async () => {
    const result = await runClient('python-sdk step-up', PYTHON, ['clients/python_sdk.py', 'step-up', RES]);
    await checkStepUp('python-sdk', result);
    await checkIdentity(result, {});
  });

  await scenario('python-sdk: computed and late step-up (read_note private, export_notes)', async () => {
    const result = await runClient('python-sdk step-up-computed-late', PYTHON, ['clients/python_sdk.py', 'step-up-computed-late', RES]);
    await checkComputedLateStepUp('python-sdk', result);
    await checkIdentity(result, {});
  });

  await scenario('rmcp: authorization code + PKCE, dynamic registration', async () => {
    if (!existsSync(RMCP_CLIENT_BIN)) throw new Error(`${RMCP_CLIENT_BIN} is not built`);
    const result = await runClient('rmcp dcr', RMCP_CLIENT_BIN, ['dcr', RES]);
    await checkIdentity(result, {});
  });

  await cimdScenario('rmcp', 'rmcp', RMCP_CLIENT_BIN, ['cimd', RES]);

  await scenario('rmcp: step-up (403 insufficient_scope, re-authorize, succeed)', async () => {
    if (!existsSync(RMCP_CLIENT_BIN)) throw new Error(`${RMCP_CLIENT_BIN} is not built`);
    const result = await runClient('rmcp step-up', RMCP_CLIENT_BIN, ['step-up', RES]);
    await checkStepUp('rmcp', result, [result.challenge403]);
    await checkIdentity(result, {});
  });

  await scenario('rmcp: computed and late step-up (read_note private, export_notes)', async () => {
    if (!existsSync(RMCP_CLIENT_BIN)) throw new Error(`${RMCP_CLIENT_BIN} is not built`);
    const result = await runClient('rmcp step-up-computed-late', RMCP_CLIENT_BIN, ['step-up-computed-late', RES]);
    await checkComputedLateStepUp('rmcp', result);
    await checkIdentity(result, {});
  });

  // The Inspector keeps registrations and tokens under ~/.mcp-inspector: a
  // fresh HOME per run, shared by its two scenarios (the step-up reuses the
  // notes:read token of the first).
  const inspectorHome = path.join(LOGS, 'inspector-home');
  rmSync(inspectorHome, { recursive: true, force: true });
  mkdirSync(inspectorHome, { recursive: true });
  const inspectorEnv = {
    ...process.env,
    HOME: inspectorHome,
    // Non-interactive: allow the OAuth flow without a TTY and "open the
    // browser" through xdg-open, which runs $BROWSER: the rig's user agent.
    MCP_AUTO_OPEN_ENABLED: 'true',
    BROWSER,
    RIG_NODE: NODE,
    MCP_INSPECTOR_SECRET_STORE: 'file',
    PATH: `${path.dirname(NODE)}:${process.env.PATH}`,
  };
  const inspectorCallback = `http://127.0.0.1:${await freePort()}/oauth/callback`;
  const inspector = (log, args, stdin = '') => run(NODE, [
    INSPECTOR, '--cli', RES, '--transport', 'http', '--callback-url', inspectorCallback, '--format', 'json', ...args,
  ], { env: inspectorEnv, cwd: ROOT, log: path.join(LOGS, log), timeoutMs: 60000, stdin });
  const inspectorJson = (out) => JSON.parse(out.slice(out.indexOf('{')));
  const authorizationUrls = (r) => [...(r.stdout + r.stderr).matchAll(/https?:\/\/\S+\/auth\?\S+/g)].map((m) => new URL(m[0]));
  let inspectorClientId;

  await scenario('inspector-cli: authorization code + PKCE, dynamic registration', async () => {
    const list = await inspector('inspector-tools-list.log', ['--method', 'tools/list']);
    if (list.code !== 0) throw new Error(failure('inspector tools/list', list));
    const tools = inspectorJson(list.stdout).result.tools.map((t) => t.name);
    const [auth] = authorizationUrls(list);
    assert(auth, 'the Inspector never asked for an authorization');
    inspectorClientId = auth.searchParams.get('client_id');
    const call = await inspector('inspector-whoami.log', ['--method', 'tools/call', '--tool-name', 'whoami']);
    if (call.code !== 0) throw new Error(failure('inspector tools/call', call));
    const whoami = JSON.parse(inspectorJson(call.stdout).result.content.find((c) => c.type === 'text').text);
    await checkIdentity({
      tools,
      whoami,
      clientId: inspectorClientId,
      authorizationRequests: [{ resource: auth.searchParams.get('resource') }],
    }, {});
  });

  await scenario('inspector-cli: step-up (403 insufficient_scope, re-authorize, succeed)', async () => {
    assert(inspectorClientId, 'the Inspector has not authorized yet (previous scenario)');
    // The CLI asks "Proceed with step-up authorization? [y/N]" on stdin.
    const add = await inspector('inspector-step-up.log', ['--method', 'tools/call', '--tool-name', 'add_note', '--tool-arg', 'text=from the inspector'], 'y\n');
    if (add.code !== 0) {
      const urls = authorizationUrls(add);
      if (urls.length > 0 && urls.every((u) => !(u.searchParams.get('scope') || '').split(' ').includes('notes:write'))) {
        // A client limitation, not the server's: the other clients' step-up
        // scenarios check the 403 challenge itself.
        return { skip: `the Inspector answered the 403 by authorizing again for ${JSON.stringify(urls.map((u) => u.searchParams.get('scope')))}, never for the challenged notes:write (${tail(add.stdout + add.stderr, 1)})` };
      }
      throw new Error(failure('inspector add_note', add));
    }
    const text = inspectorJson(add.stdout).result.content.find((c) => c.type === 'text')?.text;
    assert(/"added":\s*true/.test(text || ''), `add_note answered ${text}`);
    const [again] = authorizationUrls(add);
    assert(again, 'add_note succeeded without a second authorization: was notes:read enough?');
    const asked = (again.searchParams.get('scope') || '').split(' ');
    assert(asked.includes('notes:write'), `the step-up authorization asked for ${again.searchParams.get('scope')}`);
    const tokens = await issuedTokens();
    assert(tokens.some((t) => t.client_id === inspectorClientId && (t.scope || '').split(' ').includes('notes:write')),
      'the provider issued the Inspector no notes:write token');
    rig.stepUpNotes.push(`inspector-cli: second authorization scope="${again.searchParams.get('scope')}"`);
  });

  // DPoP (RFC 9449, issue 16): a real DPoP client (oauth4webapi) gets a
  // DPoP-bound token from oidc-provider and the TypeScript SDK speaks MCP
  // over it; then it attacks the server with what it holds.
  const checkDpop = async (name, url, { nonce }) => {
    const client = await registerConfidentialClient(`rig ${name}`);
    const result = await runClient(name, NODE, ['clients/dpop.mjs', url], {
      env: {
        RIG_ISSUER: rig.issuer,
        RIG_CC_CLIENT_ID: client.client_id,
        RIG_CC_CLIENT_SECRET: client.client_secret,
        RIG_EXPECT_NONCE: nonce ? '1' : '0',
      },
    });
    assert(String(result.tokenType).toLowerCase() === 'dpop', `the provider issued token_type ${result.tokenType}`);
    assert(result.cnfJkt && result.cnfJkt === result.thumbprint, `cnf.jkt ${result.cnfJkt} is not the client's key thumbprint ${result.thumbprint}`);
    const issued = (await issuedTokens()).filter((t) => t.client_id === client.client_id);
    assert(issued.some((t) => t.cnf?.jkt === result.thumbprint), 'the provider recorded no token bound to the client key');
    assert(result.subject === client.client_id && result.clientId === client.client_id, `whoami says ${result.subject} / ${result.clientId}`);
    assert(result.issuer === rig.issuer, `whoami issuer ${result.issuer}`);
    assert(result.dpopJkt === result.thumbprint, `whoami dpop_jkt ${result.dpopJkt}, expected ${result.thumbprint}`);
    assert(result.tools.includes('whoami') && !result.addNoteError, `tools ${result.tools}, add_note error ${result.addNoteError}`);
    assert(result.notes?.some((n) => String(n.text ?? n).includes('sent with a DPoP proof')), `the note is not listed: ${JSON.stringify(result.notes)}`);
    if (nonce) assert(result.nonceRetries >= 1, 'no use_dpop_nonce retry happened');
    const { asBearer, replayed, wrongKey, wrongMethod } = result.attacks;
    const refused = (label, a, error, why) => {
      assert(a.status === 401, `${label}: HTTP ${a.status}`);
      assert(a.error === error, `${label}: error ${a.error}, expected ${error} (${a.challenges})`);
      // Refused for the right reason, not for another fault of the attempt.
      assert(why.test(a.description || ''), `${label}: refused because "${a.description}"`);
      assert(/(^|,\s*)DPoP\s[^]*algs="[^"]*ES256/.test(a.challenges || ''), `${label}: no DPoP challenge in ${a.challenges}`);
    };
    // RFC 9449 section 7.2: a DPoP-bound token presented as Bearer.
    refused('bound token as Bearer', asBearer, 'invalid_token', nonce ? /DPoP-bound access tokens only/ : /bound to a key/);
    refused('replayed proof', replayed, 'invalid_dpop_proof', /already used/);
    refused('proof of another key', wrongKey, 'invalid_dpop_proof', /not the key the access token is bound to/);
    refused('proof for another method', wrongMethod, 'invalid_dpop_proof', /another HTTP method/);
  };

  await scenario('dpop (oauth4webapi + ts-sdk): DPoP-bound token from oidc-provider, proofs on every call, attacks refused', async () => {
    await checkDpop('dpop allowed', RES, { nonce: false });
  });

  await scenario('dpop (oauth4webapi + ts-sdk): MCP_OAUTH2_DPOP=required with server nonces', async () => {
    const url = await startResourceServer('protected-server-dpop', SERVER_BIN, await freePort(),
      (p) => `http://127.0.0.1:${p}/mcp`, { MCP_OAUTH2_DPOP: 'required', MCP_OAUTH2_DPOP_NONCE: '1' });
    const prm = await (await fetchT(`${new URL(url).origin}/.well-known/oauth-protected-resource/mcp`)).json();
    assert(prm.dpop_bound_access_tokens_required === true, `metadata dpop_bound_access_tokens_required is ${prm.dpop_bound_access_tokens_required}`);
    assert((prm.dpop_signing_alg_values_supported || []).includes('ES256'), `metadata algs ${prm.dpop_signing_alg_values_supported}`);
    // A Bearer token of the same provider is refused in required mode.
    const bearer = await clientCredentialsToken(await registerConfidentialClient('rig dpop bearer'), url);
    const res = await mcpPost(url, `Bearer ${bearer}`);
    assert(res.status === 401, `a Bearer token got HTTP ${res.status} in required mode`);
    assert(/(^|,\s*)DPoP\s[^]*algs="[^"]*ES256/.test(res.headers.get('www-authenticate') || ''), `no DPoP challenge: ${res.headers.get('www-authenticate')}`);
    await checkDpop('dpop required nonce', url, { nonce: true });
  });

  await scenario('negative: a token for another resource is refused with 401', async () => {
    const client = await registerConfidentialClient('rig negative');
    for (const other of [rig.otherResource, rig.lookalikeResource]) {
      const token = await clientCredentialsToken(client, other);
      assert(jwtPayload(token).aud === other, `the provider issued aud ${jwtPayload(token).aud}`);
      const res = await mcpPost(RES, `Bearer ${token}`);
      assert(res.status === 401, `a token for ${other} got HTTP ${res.status}`);
      const c = parseChallenge(res.headers.get('www-authenticate'));
      assert(c?.error === 'invalid_token', `the challenge for a token for ${other} is ${res.headers.get('www-authenticate')}`);
      assert(c.resource_metadata, 'the invalid_token challenge has no resource_metadata');
    }
  });

  if (rig.exchange) {
    await exchangeScenarios({
      scenario, rig, ex: rig.exchange, NODE, PYTHON, runClient, issuedTokens, providerMetadata,
      registerConfidentialClient, clientCredentialsToken, fetchT,
    });
  }

  await conformanceScenarios({
    scenario, rig, LOGS, ROOT, NODE, INTEROP_TARGET, startResourceServer, registerConfidentialClient,
    clientCredentialsToken, freePort, selected,
  });
}

// ---------------------------------------------------------------------------

async function main() {
  // A fresh log directory, but for run.sh's install logs.
  mkdirSync(LOGS, { recursive: true });
  for (const entry of readdirSync(LOGS)) {
    if (!entry.startsWith('install-')) rmSync(path.join(LOGS, entry), { recursive: true, force: true });
  }
  recordProcessGroupsIn(path.join(LOGS, 'pgids'));
  writeFileSync(path.join(LOGS, 'pgids'), '');

  const mcpPort = await freePort();
  const otherPort = await freePort();
  rig.otherResource = `http://127.0.0.1:${otherPort}/mcp`;
  const resourceFor = (p) => `http://127.0.0.1:${p}/mcp`;

  try {
    await startCimdHost();
    // The token exchange's downstream API and servers (rig/exchange.mjs):
    // the provider is told about them when it starts.
    const exchange = Object.values(EXCHANGE_SCENARIOS).some(selected) ? await prepareExchange({ reservedPort }) : undefined;
    // The provider issues tokens for any resource on this loopback address
    // (the reference server, the conformance servers, the decoys).
    await startProvider(['http://127.0.0.1:*'], exchange?.providerEnv);
    rig.resource = await startResourceServer('protected-server', SERVER_BIN, mcpPort, resourceFor);
    rig.lookalikeResource = `${rig.resource}/admin`;
    if (exchange) {
      await startExchangeServers(exchange, { rig, providerMetadata, startResourceServer, SERVER_BIN });
      rig.exchange = exchange;
    }
  } catch (err) {
    report('rig setup', 'FAIL', err.message);
    return;
  }

  await scenarios();
  if (rig.stepUpNotes.length) writeFileSync(path.join(LOGS, 'step-up.txt'), `${rig.stepUpNotes.join('\n')}\n`);
}

let exiting = false;
async function finish(code) {
  if (exiting) return;
  exiting = true;
  rig.cimdServer?.close();
  rig.exchange?.close();
  await killAll();
  process.exit(code);
}
function summary() {
  const passed = results.filter((r) => r.outcome === 'PASS').length;
  const failed = results.filter((r) => r.outcome === 'FAIL').length;
  const skipped = results.filter((r) => r.outcome === 'SKIP').length;
  // SKIP lines are listed above and counted in neither number.
  if (skipped) console.error(`[interop] ${skipped} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
  return { passed, failed };
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (exiting) return;
    report('rig', 'FAIL', `interrupted by ${sig} (a scenario hung past the overall time limit?)`);
    summary();
    finish(1);
  });
}
process.on('exit', killAllSync);

main().then(async () => {
  const { passed, failed } = summary();
  await finish(failed || passed === 0 ? 1 : 0);
}, async (err) => {
  report('rig', 'FAIL', err?.stack || String(err));
  summary();
  await finish(1);
});

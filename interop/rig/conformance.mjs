// Transparency: the MCP conformance suite's server scenarios
// (@modelcontextprotocol/conformance) against the same MCP server twice:
//
//   without the layer   the rig's conformance server (interop/conformance-server)
//                       served by plain rmcp, no authorization at all;
//   with the layer      the same server behind mcp-oauth2's McpServer/AuthLayer,
//                       reached through a loopback proxy that adds a valid access
//                       token from the provider to every request (the suite
//                       itself sends none).
//
// The auth layer must not change any MCP result: the same scenarios must pass
// (and fail) both ways. The per-scenario table goes to logs/CONFORMANCE.md.

import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { run, tail } from './lib.mjs';

/** A loopback proxy to `target` (an origin) that adds `Authorization: Bearer token`. */
export async function tokenProxy(target, token) {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    if (!headers.authorization) headers.authorization = `Bearer ${token}`;
    const forward = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    }, (up) => {
      res.writeHead(up.statusCode, up.statusMessage, up.rawHeaders);
      up.pipe(res);
    });
    forward.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
    });
    req.pipe(forward);
    res.on('close', () => forward.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Runs the suite's server scenarios against `url`; returns { scenario: {passed, failed} }. */
async function runSuite(name, url, { NODE, ROOT, LOGS }) {
  const out = path.join(LOGS, `conformance-${name}`);
  mkdirSync(out, { recursive: true });
  const r = await run(NODE, [path.join(ROOT, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js'),
    'server', '--url', url, '--suite', 'all', '--output-dir', out], {
    env: { ...process.env, HOME: out },
    cwd: ROOT,
    log: path.join(LOGS, `conformance-${name}.log`),
    timeoutMs: 240000,
  });
  if (r.timedOut) throw new Error(`conformance (${name}) timed out`);
  const scenarios = {};
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name === 'checks.json') {
        const checks = JSON.parse(readFileSync(p, 'utf8'));
        const scenario = path.basename(path.dirname(p)).replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T.*$/, '');
        scenarios[scenario] = {
          passed: checks.filter((c) => c.status === 'SUCCESS').length,
          failed: checks.filter((c) => c.status === 'FAILURE').length,
          failures: checks.filter((c) => c.status === 'FAILURE').map((c) => `${c.id || c.name}: ${c.errorMessage || c.description || ''}`.slice(0, 200)),
        };
      }
    }
  };
  walk(out);
  if (Object.keys(scenarios).length === 0) throw new Error(`conformance (${name}) produced no results: ${tail(r.stdout + r.stderr)}`);
  return scenarios;
}

function suiteVersion(root) {
  try {
    return JSON.parse(readFileSync(path.join(root, 'node_modules', '@modelcontextprotocol', 'conformance', 'package.json'), 'utf8')).version;
  } catch {
    return '(version unknown)';
  }
}

const verdict = (s) => (s && s.failed === 0 && s.passed > 0 ? 'pass' : 'FAIL');

export async function conformanceScenarios(ctx) {
  const { scenario, rig, LOGS, ROOT, INTEROP_TARGET, startResourceServer, registerConfidentialClient, clientCredentialsToken, freePort } = ctx;
  const bin = path.join(INTEROP_TARGET, 'debug', 'rig-conformance-server');

  await scenario('conformance: server scenarios give the same results with and without the auth layer', async () => {
    if (!existsSync(bin)) throw new Error(`${bin} is not built`);
    const plainPort = await freePort();
    const plainUrl = await startResourceServer('conformance-plain', bin, plainPort, (p) => `http://127.0.0.1:${p}/mcp`, {}, ['--no-auth']);
    const authPort = await freePort();
    const authUrl = await startResourceServer('conformance-auth', bin, authPort, (p) => `http://127.0.0.1:${p}/mcp`);

    const client = await registerConfidentialClient('rig conformance proxy');
    const token = await clientCredentialsToken(client, authUrl, 'notes:read notes:write');
    const proxy = await tokenProxy(new URL(authUrl).origin, token);
    try {
      // The layer really is in the way: without the proxy's token, 401.
      const bare = await fetch(authUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' , signal: AbortSignal.timeout(10000) });
      if (bare.status !== 401) throw new Error(`the protected conformance server answered ${bare.status} without a token`);

      const [plain, layered] = await Promise.all([
        runSuite('without-layer', plainUrl, ctx),
        runSuite('with-layer', `${proxy.origin}${new URL(authUrl).pathname}`, ctx),
      ]);
      const names = [...new Set([...Object.keys(plain), ...Object.keys(layered)])].sort();
      const rows = names.map((n) => ({ n, a: verdict(plain[n]), b: verdict(layered[n]), pa: plain[n], pb: layered[n] }));
      const table = [
        '# Conformance server scenarios, with and without the auth layer',
        '',
        `Suite: @modelcontextprotocol/conformance ${suiteVersion(ROOT)}, \`server --suite all\`. Generated by interop/run.sh on ${new Date().toISOString().slice(0, 10)}.`,
        'Server: interop/conformance-server, once served by plain rmcp (without the layer) and once behind',
        "mcp-oauth2's McpServer (with the layer), reached through a proxy adding a provider-issued token.",
        '',
        '| scenario | without layer | with layer | checks (without / with) |',
        '| --- | --- | --- | --- |',
        ...rows.map((r) => `| ${r.n} | ${r.a} | ${r.b} | ${r.pa ? `${r.pa.passed}/${r.pa.passed + r.pa.failed}` : '-'} / ${r.pb ? `${r.pb.passed}/${r.pb.passed + r.pb.failed}` : '-'} |`),
        '',
        `Passing without the layer: ${rows.filter((r) => r.a === 'pass').length} of ${rows.length}; with the layer: ${rows.filter((r) => r.b === 'pass').length} of ${rows.length}.`,
        '',
      ];
      const failing = rows.filter((r) => r.a !== 'pass' || r.b !== 'pass');
      if (failing.length) {
        table.push('## Failing checks', '');
        for (const r of failing) {
          for (const [label, s] of [['without', r.pa], ['with', r.pb]]) {
            for (const f of s?.failures || []) table.push(`- ${r.n} (${label} layer): ${f.replace(/\|/g, '\\|').replace(/\s+/g, ' ')}`);
          }
        }
        table.push('');
      }
      writeFileSync(path.join(LOGS, 'CONFORMANCE.md'), table.join('\n'));
      rig.conformance = rows;
      for (const r of rows) console.log(`  conformance ${r.n}: without layer ${r.a}, with layer ${r.b}`);
      const differ = rows.filter((r) => r.a !== r.b);
      if (differ.length) {
        throw new Error(`the auth layer changed the result of: ${differ.map((r) => `${r.n} (${r.a} -> ${r.b})`).join(', ')}`);
      }
    } finally {
      proxy.server.close();
    }
  });
}

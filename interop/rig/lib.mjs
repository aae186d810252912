// Process and HTTP helpers for the rig: every wait is bounded, every child is
// tracked and killed (its whole process group) when the rig ends.

import { spawn } from 'node:child_process';
import { appendFileSync, createWriteStream } from 'node:fs';
import net from 'node:net';

const children = new Set();
let pgidFile;

/** Where to record the process group of every child, for run.sh's trap. */
export function recordProcessGroupsIn(file) {
  pgidFile = file;
}

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try { child.kill(signal); } catch { /* already gone */ }
  }
}

/** Kills every child still running: SIGTERM, then SIGKILL after a grace period. */
export async function killAll(graceMs = 2000) {
  const live = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of live) killGroup(c, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) {
    await sleep(50);
  }
  for (const c of live) killGroup(c, 'SIGKILL');
}

export function killAllSync() {
  for (const c of children) killGroup(c, 'SIGKILL');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a long-running child in its own process group, its output going to
 * `log`. Resolves once a stdout line matches `ready` (returning the match),
 * rejects if it exits first or after `timeoutMs`.
 */
export function startService(name, cmd, args, { env, cwd, log, ready, timeoutMs = 30000 }) {
  const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  if (pgidFile) appendFileSync(pgidFile, `${child.pid}\n`);
  const out = createWriteStream(log);
  child.stderr.pipe(out);
  return new Promise((resolve, reject) => {
    let buffered = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`${name} not ready within ${timeoutMs / 1000}s (see ${log})`));
    }, timeoutMs);
    child.stdout.on('data', (chunk) => {
      out.write(chunk);
      if (done) return;
      buffered += chunk.toString();
      const m = buffered.match(ready);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
    child.on('exit', (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal || code}) before it was ready (see ${log})`));
    });
    child.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Runs a command to completion in its own process group, killed after
 * `timeoutMs`. Resolves to { code, signal, stdout, stderr, timedOut }.
 * Optional `stdin` text is written and the pipe closed.
 */
export function run(cmd, args, { env, cwd, log, timeoutMs = 60000, stdin } = {}) {
  const child = spawn(cmd, args, {
    env, cwd, detached: true, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  if (pgidFile) appendFileSync(pgidFile, `${child.pid}\n`);
  const out = log ? createWriteStream(log) : undefined;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => { stdout += c; out?.write(c); });
  child.stderr.on('data', (c) => { stderr += c; out?.write(c); });
  if (stdin !== undefined) {
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  }
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 2000).unref();
    }, timeoutMs);
    const finish = (code, signal) => {
      clearTimeout(timer);
      // The group may hold helpers the command started (a browser, say).
      killGroup(child, 'SIGKILL');
      children.delete(child);
      out?.end();
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.on('exit', (code, signal) => {
      // Let the pipes drain.
      setTimeout(() => finish(code, signal), 50);
    });
    child.on('error', (err) => {
      stderr += String(err);
      finish(127, null);
    });
  });
}

/**
 * A port for a server whose URL others are told before it starts (it
 * cannot retry on another): free a moment ago on 127.0.0.1, and below
 * Linux's ephemeral range (32768 and up by default), from which every
 * `bind(0)` and outgoing connection on the machine draws, so that no other
 * process takes it meanwhile by chance.
 */
export async function reservedPort() {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return freePort();
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** fetch with a timeout. */
export function fetchT(url, init = {}, timeoutMs = 10000) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

/** The JSON object on a `RIG-RESULT {...}` line of a client's stdout. */
export function rigResult(stdout) {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('RIG-RESULT '));
  return line ? JSON.parse(line.slice('RIG-RESULT '.length)) : undefined;
}

/** The last few lines of a text, for a one-line failure reason. */
export function tail(text, lines = 3) {
  return text.trim().split('\n').slice(-lines).join(' | ').replace(/\s+/g, ' ').slice(0, 600);
}

/** Parameters of a `Bearer` WWW-Authenticate challenge (quoted-string aware). */
export function parseChallenge(header) {
  if (!header) return undefined;
  const m = header.match(/^\s*Bearer\b(.*)$/i);
  if (!m) return undefined;
  const params = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let p;
  while ((p = re.exec(m[1])) !== null) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return params;
}

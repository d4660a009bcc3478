/**
 * Source of the small supervisor process that stands between stagegate and the install
 * command. It is run as `node -e SUPERVISOR_SOURCE CONFIG_JSON CMD ARGS…` (a string, not
 * a file, so it works the same from TypeScript sources, compiled `dist/` and under
 * coverage instrumentation), with the install's scrubbed environment, and:
 *
 * 1. moves itself into the install cgroup (writing `0` to `cgroup.procs` moves the
 *    writer) *before* starting anything, so every descendant is born inside it;
 * 2. starts CMD (stdio 0–2 inherited; fd 3, our report pipe, is not passed on);
 * 3. ignores SIGINT/SIGTERM/SIGHUP: stagegate signals the whole process group, which
 *    reaches CMD directly, and the supervisor must live on to report and clean up;
 * 4. when it is PID 1 of a fresh PID namespace, kills every other process of the
 *    namespace after CMD exits and counts them (it sees exactly the install's processes,
 *    nothing else, and none can leave the namespace);
 * 5. writes one JSON line `{exitCode, signal, leftovers, cgroup, spawnError?}` to fd 3.
 *
 * Kept in plain ES2022 CommonJS with no template literals so it can live in a string.
 */
export const SUPERVISOR_SOURCE = String.raw`
'use strict';
const childProcess = require('node:child_process');
const fs = require('node:fs');
const cfg = JSON.parse(process.argv[1]);
const cmd = process.argv[2];
const args = process.argv.slice(3);
let cgroup = 'none';
if (cfg.cgroupProcs) {
  try { fs.writeFileSync(cfg.cgroupProcs, '0'); cgroup = 'joined'; } catch (e) { cgroup = 'failed'; }
}
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, function () {});
let done = false;
function sleep(ms) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }
function sweepNamespace() {
  const killed = new Set();
  const deadline = Date.now() + cfg.sweepTimeoutMs;
  for (;;) {
    let alive = [];
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      let stat;
      try { stat = fs.readFileSync('/proc/' + e + '/stat', 'utf8'); } catch (err) { continue; }
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z' || state === 'X') continue;
      alive.push(Number(e));
    }
    if (alive.length === 0 || Date.now() > deadline) break;
    for (const pid of alive) { try { process.kill(pid, 'SIGSTOP'); } catch (err) {} }
    for (const pid of alive) { killed.add(pid); try { process.kill(pid, 'SIGKILL'); } catch (err) {} }
    sleep(10);
  }
  return killed.size;
}
function finish(result) {
  if (done) return;
  done = true;
  result.cgroup = cgroup;
  result.leftovers = cfg.pidNamespace ? sweepNamespace() : 0;
  try { fs.writeSync(3, JSON.stringify(result) + '\n'); } catch (err) {}
  process.exit(0);
}
let child;
try {
  child = childProcess.spawn(cmd, args, { stdio: ['inherit', 'inherit', 'inherit'] });
} catch (e) {
  finish({ exitCode: 127, signal: null, spawnError: String(e && e.code || 'error') });
}
if (child) {
  child.on('error', function (e) {
    finish({ exitCode: e && e.code === 'EACCES' ? 126 : 127, signal: null, spawnError: String(e && e.code || 'error') });
  });
  child.on('exit', function (code, signal) { finish({ exitCode: code, signal: signal }); });
}
`;

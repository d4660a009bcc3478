#!/usr/bin/env node
/**
 * `npm run bench`: measures stagegate against the targets in DESIGN.md and writes
 * docs/benchmarks.md. The broker runs as its own process (dev provider, SQLite file);
 * the load generator runs here. Every request goes to 127.0.0.1 only, bounded in count.
 *
 *   lifecycles   open+close per second and latency at several concurrencies
 *   close        close latency (stage exit → provider revoke done) p50/p99
 *   reap         10,000 orphaned stages revoked after a broker SIGKILL + restart
 *   run          `stagegate run -- true` wall time against `true`
 *
 * Usage: node bench/run.js [--quick] [--no-write]
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const Database = require('better-sqlite3');
const { stringify } = require('yaml');
const jose = require('jose');

const ROOT = path.resolve(__dirname, '..');
const BROKER = path.join(ROOT, 'dist', 'broker', 'main.js');
const CLI = path.join(ROOT, 'dist', 'sdk', 'cli', 'main.js');
const quick = process.argv.includes('--quick');
const write = !process.argv.includes('--no-write');
const ISSUER = 'https://bench.stagegate.invalid';

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const ms = (v) => `${v.toFixed(1)} ms`;

async function makeIssuer() {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'bench', alg: 'ES256' };
  let n = 0;
  return {
    jwks: { keys: [jwk] },
    async token(stage) {
      const now = Math.floor(Date.now() / 1000);
      return new jose.SignJWT({ repository: 'acme/web', ref: 'refs/heads/main', run_id: `${process.pid}-${stage}-${n++}`, run_attempt: '1' })
        .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
        .setIssuer(ISSUER).setAudience('stagegate').setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey);
    },
  };
}

function configFor(dir, jwks, opts = {}) {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    store: { sqlite: { path: path.join(dir, 'broker.db') } },
    logging: { level: 'info' },
    reaper: { intervalMs: opts.reaperIntervalMs ?? 1000 },
    issuers: [{ name: 'ci', issuer: ISSUER, jwks, audience: 'stagegate', buildKey: '{repository}/{run_id}/{run_attempt}' }],
    providers: { dev: { type: 'dev', ledger: path.join(dir, 'ledger.db') } },
    rules: [{
      name: 'bench', issuer: 'ci', claims: { repository: 'acme/web' },
      stages: {
        deploy: { ttl: '15m', heartbeat: opts.heartbeat ?? '30s', grants: [{ name: 'deployer', provider: 'dev', kind: 'aws' }] },
      },
    }],
  };
}

async function startBroker(dir, config) {
  const file = path.join(dir, `broker-${Date.now()}.yaml`);
  writeFileSync(file, stringify(config));
  const t0 = performance.now();
  const child = spawn(process.execPath, [BROKER, '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start: ${err}`)), 20000);
    child.stderr.on('data', () => {
      const m = /"url":"(http:[^"]+)"/.exec(err);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (c) => reject(new Error(`broker exited ${c}: ${err}`)));
  });
  return { url, child, startedMs: performance.now() - t0, kill: (sig = 'SIGTERM') => new Promise((r) => { if (child.exitCode !== null) return r(); child.once('exit', r); child.kill(sig); }) };
}

async function open(url, token) {
  const res = await fetch(`${url}/v1/stages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"stage":"deploy"}' });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`open failed: ${res.status} ${body.error && body.error.code}`);
  return body;
}
async function close(url, s) {
  const res = await fetch(`${url}/v1/stages/${s.stageId}`, { method: 'DELETE', headers: { authorization: `Bearer ${s.stageToken}` } });
  const body = await res.json();
  if (res.status !== 200 || body.state !== 'closed') throw new Error(`close failed: ${res.status}`);
}

async function benchLifecycles(issuer) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-bench-'));
  const broker = await startBroker(dir, configFor(dir, issuer.jwks));
  const rows = [];
  const closeLat = [];
  try {
    for (const concurrency of [1, 8, 32, 64]) {
      const total = quick ? 300 : concurrency === 1 ? 1000 : 4000;
      const tokens = [];
      for (let i = 0; i < total; i++) tokens.push(await issuer.token(`c${concurrency}`));
      // warm-up
      for (let i = 0; i < 20; i++) await close(broker.url, await open(broker.url, await issuer.token('warm')));
      const lat = [];
      let next = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const token = tokens[next++];
          const a = performance.now();
          const s = await open(broker.url, token);
          const b = performance.now();
          await close(broker.url, s);
          const c = performance.now();
          lat.push(c - a);
          if (concurrency === 1) closeLat.push(c - b);
        }
      }));
      const seconds = (performance.now() - t0) / 1000;
      lat.sort((x, y) => x - y);
      rows.push({ concurrency, total, perSecond: total / seconds, p50: pct(lat, 50), p99: pct(lat, 99) });
      console.error(`lifecycles c=${concurrency}: ${(total / seconds).toFixed(0)}/s p50 ${ms(pct(lat, 50))} p99 ${ms(pct(lat, 99))}`);
    }
  } finally {
    await broker.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  closeLat.sort((x, y) => x - y);
  return { rows, close: { p50: pct(closeLat, 50), p99: pct(closeLat, 99), n: closeLat.length } };
}

async function benchReap(issuer) {
  const count = quick ? 1000 : 10000;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-reap-'));
  const cfg = configFor(dir, issuer.jwks, { heartbeat: '1s', reaperIntervalMs: 200 });
  // The first broker's reaper must not reap while the stages are being opened.
  let broker = await startBroker(dir, { ...cfg, reaper: { intervalMs: 60000 } });
  try {
    const tokens = [];
    for (let i = 0; i < count; i++) tokens.push(await issuer.token('reap'));
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => { while (next < count) await open(broker.url, tokens[next++]); }));
    await broker.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500)); // every heartbeat has lapsed
    const db = new Database(cfg.store.sqlite.path, { readonly: true });
    const pending = () => db.prepare("SELECT COUNT(*) AS n FROM grants WHERE state <> 'revoked'").get().n;
    const before = pending();
    const t0 = performance.now();
    broker = await startBroker(dir, cfg);
    while (pending() > 0) {
      if (performance.now() - t0 > 120000) throw new Error('reaping took over 120 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const closed = db.prepare("SELECT COUNT(*) AS n FROM stages WHERE state = 'closed'").get().n;
    db.close();
    console.error(`reap: ${before} orphaned grants revoked in ${seconds.toFixed(2)} s (broker start ${ms(broker.startedMs)}), ${closed} stages closed`);
    return { count: before, seconds, closed, startMs: broker.startedMs };
  } finally {
    await broker.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchRun(issuer) {
  const n = quick ? 5 : 20;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-run-'));
  const cfg = configFor(dir, issuer.jwks);
  cfg.rules[0].stages.deploy.once = false;
  const broker = await startBroker(dir, cfg);
  try {
    const tokenFile = path.join(dir, 'id.jwt');
    writeFileSync(tokenFile, await issuer.token('run'));
    const env = { ...process.env, STAGEGATE_BROKER_URL: broker.url, STAGEGATE_IDENTITY_TOKEN_FILE: tokenFile };
    const time = (cmd, args) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const a = performance.now();
        const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
        if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
        out.push(performance.now() - a);
      }
      return out.sort((x, y) => x - y);
    };
    time(process.execPath, [CLI, 'run', '--stage', 'deploy', '--', 'true']); // warm the file cache
    const plain = time('true', []);
    const wrapped = time(process.execPath, [CLI, 'run', '--stage', 'deploy', '--', 'true']);
    const nodeOnly = time(process.execPath, ['-e', '0']);
    const r = { n, plain: pct(plain, 50), wrapped: pct(wrapped, 50), wrappedP90: pct(wrapped, 90), node: pct(nodeOnly, 50) };
    console.error(`run: true ${ms(r.plain)}, stagegate run -- true ${ms(r.wrapped)} (p90 ${ms(r.wrappedP90)}), bare node ${ms(r.node)}`);
    return r;
  } finally {
    await broker.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(l, reap, run) {
  const cpu = os.cpus()[0];
  const machine = `${os.cpus().length} × ${cpu ? cpu.model.trim() : 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
  const best = Math.max(...l.rows.map((r) => r.perSecond));
  const ok = (cond) => (cond ? 'met' : '**missed**');
  const c1 = l.rows.find((r) => r.concurrency === 1);
  return `# Benchmarks

Measured by \`npm run bench\` (\`node bench/run.js\`${quick ? ' --quick' : ''}) on ${new Date().toISOString().slice(0, 10)}.
Machine: ${machine}. The broker runs as its own process (SQLite store in WAL mode, the
dev provider); the load generator runs in the bench process on the same 2 cores, so the
numbers include client cost. Identity tokens (ES256) are minted before timing starts;
each open verifies one.

## Summary against DESIGN.md targets

| target | measured | |
|---|---|---|
| added wall time per stage (open + close), p99 ≤ 50 ms | ${ms(c1.p99)} at concurrency 1 | ${ok(c1.p99 <= 50)} |
| revocation lag (stage exit → provider revoke done), p99 ≤ 100 ms | close p99 ${ms(l.close.p99)} (upper bound of the lag) | ${ok(l.close.p99 <= 100)} |
| ≥ 1,000 open+close lifecycles/s per replica (2 cores, SQLite) | ${best.toFixed(0)}/s best | ${ok(best >= 1000)} |
| 10,000 orphaned stages revoked in ≤ 10 s after a crash | ${reap.count} in ${reap.seconds.toFixed(2)} s (incl. broker start ${ms(reap.startMs)}) | ${ok(reap.count >= 10000 ? reap.seconds <= 10 : false)} |
| \`stagegate run -- true\` adds ≤ 250 ms over \`true\` | +${ms(run.wrapped - run.plain)} (median of ${run.n}) | ${ok(run.wrapped - run.plain <= 250)} |

## Lifecycles (open + close over HTTP)

| concurrency | lifecycles | per second | p50 | p99 |
|---|---|---|---|---|
${l.rows.map((r) => `| ${r.concurrency} | ${r.total} | ${r.perSecond.toFixed(0)} | ${ms(r.p50)} | ${ms(r.p99)} |`).join('\n')}

Close alone (concurrency 1, ${l.close.n} closes): p50 ${ms(l.close.p50)}, p99 ${ms(l.close.p99)}. The
close response is sent after every provider revoke call returned, so this bounds the
revocation lag from the stage's exit; the broker also exports it per provider as
\`stagegate_revocation_lag_seconds\`.

## Reaping after a crash

${reap.count} stages were opened (each with one grant), the broker was killed with SIGKILL,
their 1 s heartbeats were left to lapse, and the broker was started again: every grant
was revoked ${reap.seconds.toFixed(2)} s after the restart began (this includes process start,
${ms(reap.startMs)}); ${reap.closed} stages ended \`closed\`.

## \`stagegate run\` overhead

Median of ${run.n} runs: \`true\` ${ms(run.plain)}; \`stagegate run --stage deploy -- true\` ${ms(run.wrapped)}
(p90 ${ms(run.wrappedP90)}); a bare \`node -e 0\` ${ms(run.node)} for scale. The difference
includes Node start-up, the open and close round trips, and the local endpoint.

## Notes

- Throughput comes from SQLite group commit: concurrent writes share one transaction per
  event-loop turn, each in its own savepoint (\`broker/store/sqlite-store.ts\`). Before it,
  the same bench measured 766 lifecycles/s at concurrency 64; a lifecycle needs four store
  writes (stage + intents, issued handles + open, close claim, revocation outcomes + closed).
- \`stagegate run\` keeps undici's llhttp WebAssembly on V8's baseline compiler; without
  that, process exit waited about 100 ms for a background tier-up compile.
- This is a shared 2-core VM: repeated runs vary by roughly ±15%. Concurrency 1 is
  latency-bound (one ES256 verification and four commits per lifecycle), not CPU-bound.
`;
}

(async () => {
  for (const f of [BROKER, CLI]) if (!require('node:fs').existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  const issuer = await makeIssuer();
  const l = await benchLifecycles(issuer);
  const run = await benchRun(issuer);
  const reap = await benchReap(issuer);
  const md = report(l, reap, run);
  if (write) writeFileSync(path.join(ROOT, 'docs', 'benchmarks.md'), md);
  process.stdout.write(md);
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

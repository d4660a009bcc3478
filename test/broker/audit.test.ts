import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { GENESIS_HASH, hashAuditEvent, verifyAuditChain, type AuditEvent } from '../../broker/audit/audit-chain';
import { CLI, call, startTestBroker, type TestBroker } from '../harness/broker';
import { expectNoLeaks, secretsOf } from '../harness/secrets';

let tb: TestBroker;
const secrets: string[] = [];
beforeAll(async () => {
  tb = await startTestBroker();
  for (let i = 0; i < 3; i++) {
    const token = await tb.mintToken();
    secrets.push(token);
    const { body } = await call(tb.url, 'POST', '/v1/stages', { token, body: { stage: 'deploy' } });
    secrets.push(...secretsOf(body));
    await call(tb.url, 'DELETE', `/v1/stages/${body.stageId}`, { token: body.stageToken });
  }
  await call(tb.url, 'POST', '/v1/stages', { token: 'garbage', body: { stage: 'deploy' } });
  await tb.broker.close(); // the file is now quiescent; the CLI reads it
});
afterAll(async () => {
  await tb.close();
});

const verify = (dbPath: string) => spawnSync(process.execPath, [CLI, 'audit', 'verify', '--db', dbPath, '--json'], { encoding: 'utf8' });

function copyDb(suffix: string): string {
  const path = `${tb.dbPath}.${suffix}`;
  const src = new Database(tb.dbPath, { readonly: true });
  src.prepare('VACUUM INTO ?').run(path);
  src.close();
  return path;
}

describe('the hash-chained audit log', () => {
  it('records every open, issue, deny and revoke, and verifies intact', () => {
    const r = verify(tb.dbPath);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    expect(out.events).toBe(3 * 9 + 1);
    const db = new Database(tb.dbPath, { readonly: true });
    const types = new Set((db.prepare('SELECT type FROM audit').all() as Array<{ type: string }>).map((x) => x.type));
    db.close();
    expect([...types].sort()).toEqual(['credential.issued', 'credential.revoked', 'stage.closed', 'stage.closing', 'stage.denied', 'stage.opened']);
  });

  it('carries no secret: no credential value, stage token or identity token', () => {
    const exported = spawnSync(process.execPath, [CLI, 'audit', 'export', '--db', tb.dbPath], { encoding: 'utf8' });
    expect(exported.status).toBe(0);
    expect(exported.stdout.split('\n').filter(Boolean)).toHaveLength(28);
    expectNoLeaks(exported.stdout, secrets, 'exported audit events');
  });

  it.each([
    ['an edited event', (db: Database.Database) => db.prepare(`UPDATE audit SET data = json_set(data, '$.grant', 'other') WHERE seq = 5`).run(), 'hash-mismatch', 5],
    ['an edited event whose own hash was recomputed', (db: Database.Database) => {
      const row = db.prepare('SELECT * FROM audit WHERE seq = 4').get() as any;
      const data = { ...JSON.parse(row.data), exitCode: 0 };
      const hash = hashAuditEvent(row.prev_hash, { seq: 4, at: row.at, type: row.type, stageId: row.stage_id, data });
      db.prepare('UPDATE audit SET data = ?, hash = ? WHERE seq = 4').run(JSON.stringify(data), hash);
    }, 'chain-broken', 5],
    ['a removed event', (db: Database.Database) => db.prepare('DELETE FROM audit WHERE seq = 7').run(), 'sequence-gap', 8],
    ['two reordered events', (db: Database.Database) => {
      const a = db.prepare('SELECT * FROM audit WHERE seq = 2').get() as any;
      const b = db.prepare('SELECT * FROM audit WHERE seq = 3').get() as any;
      const put = db.prepare('UPDATE audit SET at = ?, type = ?, stage_id = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?');
      put.run(b.at, b.type, b.stage_id, b.data, b.prev_hash, b.hash, 2);
      put.run(a.at, a.type, a.stage_id, a.data, a.prev_hash, a.hash, 3);
    }, 'chain-broken', 2],
  ])('detects %s', (_name, tamper, reason, seq) => {
    const path = copyDb(String(seq) + reason);
    const db = new Database(path);
    tamper(db);
    db.close();
    const r = verify(path);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, problem: { seq, reason } });
  });

  it('verifyAuditChain starts from the genesis hash', () => {
    const e: AuditEvent = { seq: 1, at: 1, type: 'stage.opened', stageId: null, data: {}, prevHash: GENESIS_HASH, hash: '' };
    const hash = hashAuditEvent(GENESIS_HASH, e);
    expect(verifyAuditChain([{ ...e, hash }])).toMatchObject({ ok: true, events: 1, head: hash });
    expect(verifyAuditChain([{ ...e, hash, prevHash: 'f'.repeat(64) }]).ok).toBe(false);
  });

  it('refuses usage errors with exit 2', () => {
    expect(spawnSync(process.execPath, [CLI, 'audit', 'verify'], { encoding: 'utf8' }).status).toBe(2);
    expect(spawnSync(process.execPath, [CLI, 'audit', 'frobnicate', '--db', tb.dbPath], { encoding: 'utf8' }).status).toBe(2);
  });
});

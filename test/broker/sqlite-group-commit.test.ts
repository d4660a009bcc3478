/**
 * The SQLite store's group commit: concurrent writes share one transaction, yet each
 * succeeds or fails on its own, and the audit chain stays intact.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyAuditChain } from '../../broker/audit/audit-chain';
import { SqliteStore } from '../../broker/store/sqlite-store';
import { isStagegateError } from '../../sdk/errors';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const stage = (id: string, build: string) => {
  const now = Date.now();
  return {
    stage: { id, build, stage: 'deploy', phase: 'run' as const, rule: 'r', issuer: 'ci', tokenSha256: 'a'.repeat(64), identitySha256: 'b'.repeat(64), openedAt: now, expiresAt: now + 60_000, maxExpiresAt: now + 60_000, heartbeatSeconds: 30, lastHeartbeatAt: now },
    grants: [{ name: 'g', provider: 'dev', intent: { stageId: id } }],
    once: true,
    requireCleanInstall: false,
    audit: [{ type: 'stage.opened' as const, stageId: id, data: { build } }],
  };
};

it('a failing write in a batch rolls back alone; the others commit; the chain verifies', async () => {
  const store = new SqliteStore({ path: join(dir, 's.db') });
  // 40 concurrent opens over 10 builds: exactly one per build may win its once-slot.
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) => store.createStage(stage(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, `build-${i % 10}`))),
  );
  const ok = results.filter((r) => r.status === 'fulfilled');
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(ok).toHaveLength(10);
  expect(failed).toHaveLength(30);
  for (const f of failed) expect(isStagegateError(f.reason, 'STAGE_ALREADY_RAN')).toBe(true);
  const events = await store.readAudit(0, 1000);
  expect(events).toHaveLength(10); // the losers' audit events were rolled back with them
  expect(verifyAuditChain(events)).toMatchObject({ ok: true, events: 10 });
  expect((await store.counts()).openStages).toBe(10);
  await store.close();
});

it('a write resolves only once committed: a fresh connection sees it', async () => {
  const path = join(dir, 's.db');
  const store = new SqliteStore({ path });
  await store.createStage(stage('00000000-0000-4000-8000-000000000001', 'b'));
  const other = new SqliteStore({ path });
  expect(await other.getStage('00000000-0000-4000-8000-000000000001')).toMatchObject({ build: 'b', state: 'opening' });
  await other.close();
  await store.close();
});

it('closing the store commits writes still queued', async () => {
  const path = join(dir, 's.db');
  const store = new SqliteStore({ path });
  const pending = store.createStage(stage('00000000-0000-4000-8000-000000000002', 'b2'));
  await store.close();
  await expect(pending).resolves.toBeUndefined();
  const reopened = new SqliteStore({ path });
  expect(await reopened.getStage('00000000-0000-4000-8000-000000000002')).toBeDefined();
  await reopened.close();
});

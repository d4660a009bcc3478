/**
 * Everything a broker leaves behind that must never hold credential material
 * (DESIGN.md guarantee 6): its log lines (the broker's and its providers'), the bytes of
 * its SQLite file and write-ahead log, the audit chain, and whatever answers the test
 * collected (error bodies, close answers, stage views).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { WorldBroker } from './provider-world';

export interface Trace {
  readonly where: string;
  readonly bytes: Buffer;
}

/** Read the broker's traces now (call it while the broker runs: the WAL then holds the newest writes). */
export async function collectBrokerTraces(wb: WorldBroker, answers: readonly string[] = []): Promise<Trace[]> {
  const traces: Trace[] = [{ where: 'broker log', bytes: Buffer.from(wb.log.text()) }];
  for (const suffix of ['', '-wal', '-shm']) {
    const file = `${wb.dbPath}${suffix}`;
    if (existsSync(file)) traces.push({ where: `store file broker.db${suffix}`, bytes: readFileSync(file) });
  }
  const audit = await wb.broker.store.readAudit(0, 1_000_000);
  traces.push({ where: 'audit chain', bytes: Buffer.from(JSON.stringify(audit)) });
  answers.forEach((a, i) => traces.push({ where: `collected answer #${i}`, bytes: Buffer.from(a) }));
  return traces;
}

/**
 * Fail if any secret occurs in any trace, naming where and only the first 4 characters
 * of the secret. Refuses to pass vacuously: it needs secrets and a non-empty store file.
 */
export function expectNoSecretTraces(traces: readonly Trace[], secrets: readonly string[]): void {
  const real = [...new Set(secrets)].filter((s) => s.length >= 8);
  if (real.length === 0) throw new Error('expectNoSecretTraces was given no secrets to look for');
  if (!traces.some((t) => t.where.startsWith('store file') && t.bytes.length > 0)) throw new Error('no store file bytes to scan');
  const found: string[] = [];
  for (const t of traces) {
    for (const s of real) if (t.bytes.includes(Buffer.from(s, 'utf8'))) found.push(`${t.where}: ${s.slice(0, 4)}…`);
  }
  if (found.length > 0) throw new Error(`secret material found in ${found.length} place(s): ${found.slice(0, 5).join('; ')}`);
}

/** Every value of every credential in an open or heartbeat answer, and the stage token. */
export function secretsOfAnswer(answer: { stageToken?: string; credentials?: ReadonlyArray<{ values: Record<string, string> }> }): string[] {
  const out: string[] = [];
  if (answer.stageToken) out.push(answer.stageToken);
  for (const c of answer.credentials ?? []) out.push(...Object.values(c.values));
  return out;
}

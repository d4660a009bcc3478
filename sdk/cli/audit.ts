/**
 * `stagegate audit verify --config FILE | --db FILE [--json]`: recompute the audit hash
 * chain and report the first edited, removed or reordered event. Exit 0 when intact,
 * 1 when broken, 2 on usage errors.
 * `stagegate audit export ...` writes the events as JSON lines (hashes and handles only).
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { verifyAuditChain, type AuditEvent } from '../../broker/audit/audit-chain';

const USAGE = 'usage: stagegate audit verify|export (--config FILE | --db FILE) [--json]';

function* readEvents(db: Database.Database): Generator<AuditEvent> {
  const rows = db.prepare('SELECT seq, at, type, stage_id, data, prev_hash, hash FROM audit ORDER BY rowid').iterate() as Iterable<{
    seq: number; at: number; type: string; stage_id: string | null; data: string; prev_hash: string; hash: string;
  }>;
  for (const r of rows) {
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(r.data) as Record<string, unknown>;
    } catch {
      data = { unparseable: true };
    }
    yield { seq: r.seq, at: r.at, type: r.type, stageId: r.stage_id, data, prevHash: r.prev_hash, hash: r.hash };
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`stagegate audit: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const action = positionals[0];
  if (values.help || (action !== 'verify' && action !== 'export')) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  let dbPath = values.db;
  if (!dbPath && values.config) {
    try {
      // Loaded only when needed: the config module pulls in every provider SDK.
      const { loadConfigFile } = require('../../broker/config/load-config') as typeof import('../../broker/config/load-config');
      const cfg = loadConfigFile(values.config);
      const p = cfg.raw.store.sqlite!.path;
      dbPath = isAbsolute(p) ? p : resolve(cfg.baseDir, p);
    } catch (err) {
      process.stderr.write(`stagegate audit: ${(err as Error).message}\n`);
      return 2;
    }
  }
  if (!dbPath || !existsSync(dbPath)) {
    process.stderr.write(`stagegate audit: no store at ${dbPath ?? '(give --config or --db)'}\n`);
    return 2;
  }
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    if (action === 'export') {
      for (const e of readEvents(db)) process.stdout.write(`${JSON.stringify(e)}\n`);
      return 0;
    }
    const result = verifyAuditChain(readEvents(db));
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (result.ok) process.stdout.write(`audit chain intact: ${result.events} events, head ${result.head}\n`);
    else {
      process.stdout.write(
        `audit chain BROKEN at event ${result.problem!.seq} (${result.problem!.reason}); ${result.events} events verified before it\n`,
      );
    }
    return result.ok ? 0 : 1;
  } finally {
    db.close();
  }
}

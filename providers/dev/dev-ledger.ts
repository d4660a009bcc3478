/**
 * The dev provider's own record of what it minted, so a revoked demo credential is
 * refused by the provider's check exactly as a cloud would refuse it. Keyed by the
 * sha256 of each value: the ledger holds no credential material either.
 */
import Database from 'better-sqlite3';

export type DevCredentialState = 'active' | 'revoked' | 'expired' | 'unknown';

export interface DevLedgerEntry {
  readonly credentialId: string;
  readonly stageId: string;
  readonly grant: string;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
}

export class DevLedger {
  private readonly db: Database.Database;
  private readonly insertCred: Database.Statement;
  private readonly insertValue: Database.Statement;
  private readonly revokeStmt: Database.Statement;
  private readonly lookupStmt: Database.Statement;

  /** @param path SQLite file, or `:memory:` (default) for a ledger that forgets on restart. */
  constructor(path = ':memory:') {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // A demo ledger: durable against process crashes (WAL), no fsync on the hot path.
    this.db.pragma('synchronous = OFF');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS dev_credentials (
        credential_id TEXT PRIMARY KEY, stage_id TEXT NOT NULL, grant_name TEXT NOT NULL,
        expires_at INTEGER NOT NULL, revoked_at INTEGER);
      CREATE TABLE IF NOT EXISTS dev_values (
        value_sha256 TEXT PRIMARY KEY, credential_id TEXT NOT NULL);`);
    this.insertCred = this.db.prepare('INSERT INTO dev_credentials VALUES (?, ?, ?, ?, NULL)');
    this.insertValue = this.db.prepare('INSERT INTO dev_values VALUES (?, ?)');
    this.revokeStmt = this.db.prepare('UPDATE dev_credentials SET revoked_at = ? WHERE credential_id = ? AND revoked_at IS NULL');
    this.lookupStmt = this.db.prepare(
      `SELECT c.credential_id AS credentialId, c.stage_id AS stageId, c.grant_name AS grant,
              c.expires_at AS expiresAt, c.revoked_at AS revokedAt
         FROM dev_values v JOIN dev_credentials c ON c.credential_id = v.credential_id WHERE v.value_sha256 = ?`,
    );
  }

  record(entry: Omit<DevLedgerEntry, 'revokedAt'>, valueDigests: readonly string[]): void {
    this.db.transaction(() => {
      this.insertCred.run(entry.credentialId, entry.stageId, entry.grant, entry.expiresAt);
      for (const d of valueDigests) this.insertValue.run(d, entry.credentialId);
    })();
  }

  revoke(credentialId: string, at: number): void {
    this.revokeStmt.run(at, credentialId);
  }

  /** Revoke every credential minted for a stage+grant (crash recovery: only the intent is known). */
  revokeByGrant(stageId: string, grant: string, at: number): number {
    return this.db
      .prepare('UPDATE dev_credentials SET revoked_at = ? WHERE stage_id = ? AND grant_name = ? AND revoked_at IS NULL')
      .run(at, stageId, grant).changes;
  }

  lookup(valueSha256: string): DevLedgerEntry | undefined {
    return this.lookupStmt.get(valueSha256) as DevLedgerEntry | undefined;
  }

  close(): void {
    this.db.close();
  }
}

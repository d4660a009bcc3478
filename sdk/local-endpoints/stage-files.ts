/**
 * The stage's private temp directory: a 0700 directory holding 0600 files — the AWS
 * endpoint token and `secret` credentials as `secrets/<grant>/<key>` — removed at exit.
 *
 * Files, not environment variables: the environment is copied into every descendant and
 * into /proc/PID/environ for its whole life; a file is read when needed and deleted when
 * the stage ends.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Credential } from '../client';

export interface StageFiles {
  /** The 0700 directory. */
  readonly dir: string;
  /**
   * Write the AWS endpoint token WITHOUT a trailing newline (the SDKs send the file's
   * bytes untrimmed) and return its path, for `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
   */
  writeAwsToken(token: string): string;
  /** (Re)write every `secret` credential; returns the secrets directory. */
  writeSecrets(credentials: readonly Credential[]): string;
  /** An empty 0600 file (for `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`); returns its path. */
  writeEmptyAwsProfiles(): string;
  /** Delete everything. Idempotent, never throws. */
  remove(): void;
}

/**
 * A file name from a grant or key name: anything outside `[A-Za-z0-9._-]` becomes `_`,
 * and a leading dot too, so no name can climb out of the directory or hide.
 *
 * @example
 * ```ts
 * safeFileName('../etc/passwd'); // '.._etc_passwd' → '_._etc_passwd'
 * ```
 */
export function safeFileName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_');
  return s === '' ? '_' : s;
}

/**
 * Create the directory (`$TMPDIR/stagegate-XXXXXX`, mode 0700).
 *
 * @example
 * ```ts
 * const files = createStageFiles();
 * try { env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = files.writeAwsToken(token); } finally { files.remove(); }
 * ```
 */
export function createStageFiles(parent: string = tmpdir()): StageFiles {
  const dir = mkdtempSync(join(parent, 'stagegate-'));
  let removed = false;
  const writePrivate = (path: string, content: string) => {
    // Write-then-rename so a reader never sees a half-written secret.
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, content, { mode: 0o600 });
    renameSync(tmp, path);
  };
  return {
    dir,
    writeAwsToken(token) {
      const path = join(dir, 'aws-container-authorization-token');
      writePrivate(path, token);
      return path;
    },
    writeEmptyAwsProfiles() {
      const path = join(dir, 'aws-profiles-empty');
      writePrivate(path, '');
      return path;
    },
    writeSecrets(credentials) {
      const root = join(dir, 'secrets');
      mkdirSync(root, { recursive: true, mode: 0o700 });
      for (const c of credentials) {
        if (c.kind !== 'secret') continue;
        const grantDir = join(root, safeFileName(c.name));
        mkdirSync(grantDir, { recursive: true, mode: 0o700 });
        for (const [key, value] of Object.entries(c.values)) writePrivate(join(grantDir, safeFileName(key)), value);
      }
      return root;
    },
    remove() {
      if (removed) return;
      removed = true;
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort: the directory is 0700 and its credentials are revoked anyway.
      }
    },
  };
}

/**
 * Which versions of a package an install put on disk. Used before running an
 * allow-listed package's scripts: the allow-list names an exact version, and a package
 * manager asked to rebuild by name alone (pnpm, yarn berry) would also rebuild another.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Upper bound of `node_modules` directories visited (a large monorepo has a few thousand). */
export const MAX_NODE_MODULES_DIRS = 20_000;

/**
 * Versions of `name` found under `cwd/node_modules` (nested `node_modules` and pnpm's
 * `.pnpm` store included). Symlinked directories are read but not descended into, so a
 * link cycle cannot loop. Distinct versions, sorted.
 */
export function findInstalledVersions(cwd: string, name: string): string[] {
  const found = new Set<string>();
  const queue: string[] = [join(cwd, 'node_modules')];
  let visited = 0;
  while (queue.length > 0 && visited < MAX_NODE_MODULES_DIRS) {
    const dir = queue.shift() as string;
    visited += 1;
    const version = readVersion(join(dir, name), name);
    if (version !== undefined) found.add(version);
    for (const pkgDir of packageDirs(dir)) {
      const nested = join(pkgDir, 'node_modules');
      if (isRealDirectory(nested)) queue.push(nested);
    }
  }
  return [...found].sort();
}

function packageDirs(nodeModules: string): string[] {
  const out: string[] = [];
  for (const entry of safeReaddir(nodeModules)) {
    if (entry === '.bin') continue;
    const full = join(nodeModules, entry);
    if (entry === '.pnpm') {
      // .pnpm/<name>@<version>/node_modules/<name>: the store entry's node_modules holds the package.
      for (const store of safeReaddir(full)) {
        const nm = join(full, store, 'node_modules');
        if (isRealDirectory(nm)) out.push(join(full, store));
      }
      continue;
    }
    if (entry.startsWith('@')) {
      for (const scoped of safeReaddir(full)) if (isRealDirectory(join(full, scoped))) out.push(join(full, scoped));
    } else if (isRealDirectory(full)) {
      out.push(full);
    }
  }
  return out;
}

function readVersion(pkgDir: string, name: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    return pkg.name === name && typeof pkg.version === 'string' ? pkg.version : undefined;
  } catch {
    return undefined;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isRealDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

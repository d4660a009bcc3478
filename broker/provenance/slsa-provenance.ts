import { isRecord, type InTotoStatement } from './in-toto-statement';

/** SLSA provenance predicate types, by the version name used in policy. */
export const SLSA_PREDICATE_TYPES = {
  v1: 'https://slsa.dev/provenance/v1',
  'v0.2': 'https://slsa.dev/provenance/v0.2',
} as const;
export type SlsaVersion = keyof typeof SLSA_PREDICATE_TYPES;

/**
 * What a SLSA provenance predicate says about the build. Every field is read from a
 * verified statement; a field the predicate does not carry is `undefined`, and a
 * policy check on it fails.
 */
export interface SlsaFacts {
  readonly version: SlsaVersion;
  readonly builderId?: string;
  readonly buildType?: string;
  /** Repository URL without `git+` and a trailing `.git`, e.g. `https://github.com/acme/web`. */
  readonly sourceRepo?: string;
  /** e.g. `refs/heads/main`. */
  readonly sourceRef?: string;
  /** Commit digest, lower-case hex (gitCommit, sha1 or sha256, in that order). */
  readonly sourceDigest?: string;
}

/** The SLSA version of a statement, or undefined when it is not SLSA provenance. */
export function slsaVersionOf(statement: InTotoStatement): SlsaVersion | undefined {
  if (statement.predicateType === SLSA_PREDICATE_TYPES.v1) return 'v1';
  if (statement.predicateType === SLSA_PREDICATE_TYPES['v0.2']) return 'v0.2';
  return undefined;
}

/**
 * Read builder, build type and source from SLSA provenance v1
 * (https://slsa.dev/spec/v1.0/provenance) or v0.2 (https://slsa.dev/spec/v0.2/provenance).
 *
 * Where the source comes from:
 * - v1 with a GitHub Actions workflow build type (`externalParameters.workflow`
 *   `{repository, ref}`, as written by actions/attest-build-provenance and the SLSA
 *   GitHub generator): that repository and ref, and the digest of the resolved
 *   dependency whose URI is that repository;
 * - other v1: the first `resolvedDependencies` entry with a `git+` URI;
 * - v0.2: `invocation.configSource` (`uri` = `git+REPO@REF`, `digest`), else the first
 *   `materials` entry with a `git+` URI.
 */
export function readSlsaFacts(statement: InTotoStatement, version: SlsaVersion): SlsaFacts {
  const p = statement.predicate;
  if (version === 'v1') {
    const buildDefinition = record(p.buildDefinition);
    const runDetails = record(p.runDetails);
    const deps = Array.isArray(buildDefinition.resolvedDependencies) ? buildDefinition.resolvedDependencies.map(record) : [];
    const workflow = record(record(buildDefinition.externalParameters).workflow);
    let source: GitSource | undefined;
    if (typeof workflow.repository === 'string') {
      const repo = normalizeRepo(workflow.repository);
      const dep = deps.find((d) => {
        const parsed = typeof d.uri === 'string' ? parseGitUri(d.uri) : undefined;
        return parsed?.repo === repo;
      });
      source = { repo, ref: text(workflow.ref), digest: dep ? commitDigest(dep.digest) : undefined };
    } else {
      source = firstGitSource(deps);
    }
    return {
      version,
      builderId: text(record(runDetails.builder).id),
      buildType: text(buildDefinition.buildType),
      sourceRepo: source?.repo,
      sourceRef: source?.ref,
      sourceDigest: source?.digest,
    };
  }
  const invocation = record(p.invocation);
  const configSource = record(invocation.configSource);
  const parsed = typeof configSource.uri === 'string' ? parseGitUri(configSource.uri) : undefined;
  const source: GitSource | undefined = parsed
    ? { ...parsed, digest: commitDigest(configSource.digest) }
    : firstGitSource(Array.isArray(p.materials) ? p.materials.map(record) : []);
  return {
    version,
    builderId: text(record(p.builder).id),
    buildType: text(p.buildType),
    sourceRepo: source?.repo,
    sourceRef: source?.ref,
    sourceDigest: source?.digest,
  };
}

interface GitSource {
  readonly repo: string;
  readonly ref?: string;
  readonly digest?: string;
}

function firstGitSource(entries: ReadonlyArray<Record<string, unknown>>): GitSource | undefined {
  for (const e of entries) {
    const parsed = typeof e.uri === 'string' ? parseGitUri(e.uri) : undefined;
    if (parsed) return { ...parsed, digest: commitDigest(e.digest) };
  }
  return undefined;
}

/** `git+https://github.com/o/r@refs/heads/main` → repo + ref; undefined if not `git+`. */
export function parseGitUri(uri: string): { repo: string; ref?: string } | undefined {
  if (!uri.startsWith('git+')) return undefined;
  const bare = uri.slice(4);
  // The ref separator is the first "@" after the host: an "@" before it is userinfo
  // (git+ssh://git@github.com/...), and refs themselves contain "/".
  const scheme = bare.indexOf('://');
  const pathStart = scheme >= 0 ? bare.indexOf('/', scheme + 3) : -1;
  const at = pathStart >= 0 ? bare.indexOf('@', pathStart) : -1;
  if (at < 0) return { repo: normalizeRepo(bare) };
  return { repo: normalizeRepo(bare.slice(0, at)), ref: bare.slice(at + 1) || undefined };
}

/** Drop a `git+` prefix, a trailing `/` and a trailing `.git`, so policy and provenance compare alike. */
export function normalizeRepo(url: string): string {
  let repo = url.startsWith('git+') ? url.slice(4) : url;
  repo = repo.replace(/\/+$/, '');
  return repo.endsWith('.git') ? repo.slice(0, -4) : repo;
}

function commitDigest(digest: unknown): string | undefined {
  const d = record(digest);
  const value = text(d.gitCommit) ?? text(d.sha1) ?? text(d.sha256);
  return value && /^[0-9a-fA-F]{40,64}$/.test(value) ? value.toLowerCase() : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

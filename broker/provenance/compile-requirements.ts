import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { StagegateError } from '../../sdk/errors';
import { compileClaimTemplate, escapeRegExp, fillClaimTemplate, type ClaimTemplate } from './claim-template';
import {
  requirementsSchema,
  type BindableFact,
  type RequirementItemConfig,
  type SigstoreRequirementConfig,
  type SlsaRequirementConfig,
} from './requirements-schema';
import { createSigstoreTrust, type SigstoreTrust } from './sigstore-bundle';
import { SLSA_PREDICATE_TYPES, type SlsaVersion } from './slsa-provenance';
import { BUILTIN_TRUSTED_ROOTS, PUBLIC_GOOD_TRUSTED_ROOT, loadTrustMaterial } from './trusted-root';
import { loadVerificationKey, type VerificationKey } from './verification-key';

/** A config mistake, named by its path (e.g. `stages.deploy.requires[0].dsse.keyFiles[1]`). */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** Options of {@link compileRequirements}. */
export interface CompileRequirementsOptions {
  /** Directory that relative key / trusted-root file paths are resolved against (the config file's directory). */
  readonly baseDir: string;
  /**
   * Named trusted roots (parsed `trusted_root.json` documents) a `sigstore:` requirement
   * may name in `trustedRoot:`. `public-good` is built in; an entry of that name replaces it.
   */
  readonly trustedRoots?: Readonly<Record<string, unknown>>;
  /** Config path of the `requires:` list, used in problems and denial details; default `requires`. */
  readonly path?: string;
}

/** Identity policy of a certificate-signed `sigstore:` requirement. */
export interface CompiledIdentity {
  /** Exact SAN (template). */
  readonly exact?: ClaimTemplate;
  /** Whole-SAN pattern: compiled once when it has no placeholders, else per request with escaped claim values. */
  readonly pattern?: { readonly template: ClaimTemplate; readonly fixed?: RegExp };
  readonly issuer: ClaimTemplate;
}

export interface CompiledSlsa {
  readonly predicateTypes: ReadonlySet<string>;
  readonly builderIds: ReadonlySet<string>;
  readonly buildTypes?: ReadonlySet<string>;
  readonly sourceRepo?: ClaimTemplate;
  readonly sourceRef?: ClaimTemplate;
  readonly sourceDigest?: ClaimTemplate;
}

export interface CompiledBinding {
  readonly path: string;
  readonly fact: BindableFact;
  readonly equals: ClaimTemplate;
}

/** One requirement item, with keys and trust material loaded. */
export interface CompiledRequirementItem {
  readonly path: string;
  readonly kind: 'sigstore' | 'dsse';
  readonly sigstore?: { readonly trust: SigstoreTrust; readonly identity?: CompiledIdentity };
  readonly dsseKeys?: readonly VerificationKey[];
  readonly slsa?: CompiledSlsa;
  readonly bindings: readonly CompiledBinding[];
  readonly requireArtifact: boolean;
}

export type CompiledRequirementEntry =
  | { readonly kind: 'item'; readonly path: string; readonly item: CompiledRequirementItem }
  | { readonly kind: 'anyOf'; readonly path: string; readonly items: readonly CompiledRequirementItem[] };

/** A stage's `requires:` list, ready for {@link verifyEvidence}. */
export interface CompiledRequirements {
  readonly entries: readonly CompiledRequirementEntry[];
}

/**
 * Compile a stage's `requires:` once at config load: validate the shape, read key and
 * trusted-root files, parse keys, build Sigstore verifiers, compile templates and
 * anchored identity patterns. Accepts the raw YAML value or the output of
 * `requirementsSchema`.
 *
 * @throws StagegateError `CONFIG_INVALID` with `details.problems: ConfigProblem[]`
 *   naming every mistake by its path.
 */
export function compileRequirements(raw: unknown, options: CompileRequirementsOptions): CompiledRequirements {
  const base = options.path ?? 'requires';
  const problems: ConfigProblem[] = [];
  const parsed = requirementsSchema.safeParse(raw ?? []);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push({ path: joinPath(base, issue.path), message: issue.message });
    throw configInvalid(problems);
  }
  const roots = { ...BUILTIN_TRUSTED_ROOTS, ...(options.trustedRoots ?? {}) };
  const rootDocuments = new Map<string, unknown>();
  const ctx: CompileContext = { options, roots, rootDocuments, problems };
  const entries: CompiledRequirementEntry[] = [];
  parsed.data.forEach((entry, i) => {
    const path = `${base}[${i}]`;
    if (entry.anyOf) {
      const items = entry.anyOf.map((item, j) => compileItem(item, `${path}.anyOf[${j}]`, ctx));
      if (items.every((x): x is CompiledRequirementItem => x !== undefined)) entries.push({ kind: 'anyOf', path, items });
    } else {
      const item = compileItem(entry, path, ctx);
      if (item) entries.push({ kind: 'item', path, item });
    }
  });
  if (problems.length > 0) throw configInvalid(problems);
  const compiled: CompiledRequirements = { entries };
  COMPILED.add(compiled);
  return compiled;
}

// Only objects made by compileRequirements are verified against: a hand-built or
// deserialised "compiled" object could skip the load-time checks (key parsing,
// trusted-root loading, anchoring).
const COMPILED = new WeakSet<object>();

/** Whether a value was returned by {@link compileRequirements}. */
export function isCompiledRequirements(value: unknown): value is CompiledRequirements {
  return typeof value === 'object' && value !== null && COMPILED.has(value);
}

interface CompileContext {
  readonly options: CompileRequirementsOptions;
  readonly roots: Readonly<Record<string, unknown>>;
  /** Trusted-root files read so far, by absolute path: each is read once. */
  readonly rootDocuments: Map<string, unknown>;
  readonly problems: ConfigProblem[];
}

function compileItem(item: RequirementItemConfig, path: string, ctx: CompileContext): CompiledRequirementItem | undefined {
  const before = ctx.problems.length;
  const problem = (sub: string, message: string): void => {
    ctx.problems.push({ path: `${path}.${sub}`, message });
  };
  const template = (sub: string, value: string | undefined): ClaimTemplate | undefined => {
    if (value === undefined) return undefined;
    try {
      return compileClaimTemplate(value);
    } catch (err) {
      problem(sub, (err as Error).message);
      return undefined;
    }
  };

  let sigstore: CompiledRequirementItem['sigstore'];
  let dsseKeys: VerificationKey[] | undefined;
  if (item.sigstore) sigstore = compileSigstore(item.sigstore, `${path}.sigstore`, ctx, template);
  if (item.dsse) {
    dsseKeys = [];
    for (const [i, pem] of (item.dsse.keys ?? []).entries()) {
      const key = loadKey(pem, `${path}.dsse.keys[${i}]`, ctx);
      if (key) dsseKeys.push(key);
    }
    for (const [i, file] of (item.dsse.keyFiles ?? []).entries()) {
      const pem = readConfigFile(file, `${path}.dsse.keyFiles[${i}]`, ctx);
      const key = pem === undefined ? undefined : loadKey(pem, `${path}.dsse.keyFiles[${i}]`, ctx);
      if (key) dsseKeys.push(key);
    }
  }
  const slsa = item.slsa ? compileSlsa(item.slsa, template) : undefined;
  const bindings: CompiledBinding[] = [];
  (item.bindings ?? []).forEach((b, i) => {
    const equals = template(`bindings[${i}]`, b.equals ?? `{${b.claim}}`);
    if (equals) bindings.push({ path: `${path}.bindings[${i}]`, fact: b.fact, equals });
  });
  if (ctx.problems.length > before) return undefined;
  return {
    path,
    kind: item.sigstore ? 'sigstore' : 'dsse',
    ...(sigstore ? { sigstore } : {}),
    ...(dsseKeys ? { dsseKeys } : {}),
    ...(slsa ? { slsa } : {}),
    bindings,
    requireArtifact: item.requireArtifact ?? false,
  };
}

function compileSigstore(
  cfg: SigstoreRequirementConfig,
  path: string,
  ctx: CompileContext,
  template: (sub: string, value: string | undefined) => ClaimTemplate | undefined,
): CompiledRequirementItem['sigstore'] {
  const rootDocument = resolveTrustedRoot(cfg.trustedRoot ?? PUBLIC_GOOD_TRUSTED_ROOT, `${path}.trustedRoot`, ctx);
  let key: VerificationKey | undefined;
  if (cfg.publicKey !== undefined) key = loadKey(cfg.publicKey, `${path}.publicKey`, ctx);
  if (cfg.publicKeyFile !== undefined) {
    const pem = readConfigFile(cfg.publicKeyFile, `${path}.publicKeyFile`, ctx);
    if (pem !== undefined) key = loadKey(pem, `${path}.publicKeyFile`, ctx);
  }
  if (rootDocument === undefined) return undefined;
  let trust: SigstoreTrust;
  try {
    const material = loadTrustMaterial(rootDocument, key?.key);
    trust = createSigstoreTrust(material, key ? 'key' : 'certificate', key?.fingerprint);
  } catch (err) {
    ctx.problems.push({ path: `${path}.trustedRoot`, message: (err as Error).message });
    return undefined;
  }
  if (cfg.publicKey !== undefined || cfg.publicKeyFile !== undefined) return key ? { trust } : undefined;

  const issuer = template('sigstore.issuer', cfg.issuer);
  const exact = template('sigstore.identity', cfg.identity);
  let pattern: CompiledIdentity['pattern'];
  const patternTemplate = template('sigstore.identityRegex', cfg.identityRegex);
  if (patternTemplate) {
    // Probe-fill placeholders so a syntax error is reported at load, not per request.
    const probe = fillClaimTemplate(patternTemplate, Object.fromEntries(patternTemplate.claims.map((c) => [c, 'x'])), escapeRegExp);
    try {
      const fixed = anchoredRegExp(probe.ok ? probe.value : '');
      pattern = patternTemplate.claims.length === 0 ? { template: patternTemplate, fixed } : { template: patternTemplate };
    } catch {
      ctx.problems.push({ path: `${path}.identityRegex`, message: 'not a valid regular expression' });
    }
  }
  if (!issuer || (!exact && !pattern)) return undefined;
  return { trust, identity: { issuer, ...(exact ? { exact } : {}), ...(pattern ? { pattern } : {}) } };
}

function compileSlsa(
  cfg: SlsaRequirementConfig,
  template: (sub: string, value: string | undefined) => ClaimTemplate | undefined,
): CompiledSlsa {
  const versions: SlsaVersion[] = cfg.versions ?? ['v1', 'v0.2'];
  const sourceRepo = template('slsa.sourceRepo', cfg.sourceRepo);
  const sourceRef = template('slsa.sourceRef', cfg.sourceRef);
  const sourceDigest = template('slsa.sourceDigest', cfg.sourceDigest);
  return {
    predicateTypes: new Set(versions.map((v) => SLSA_PREDICATE_TYPES[v])),
    builderIds: new Set(cfg.builderIds),
    ...(cfg.buildTypes ? { buildTypes: new Set(cfg.buildTypes) } : {}),
    ...(sourceRepo ? { sourceRepo } : {}),
    ...(sourceRef ? { sourceRef } : {}),
    ...(sourceDigest ? { sourceDigest } : {}),
  };
}

/**
 * Anchor a configured identity pattern to the whole SAN. @sigstore/verify's own policy
 * matches unanchored (`"acme/web"` would also accept `"evil/acme/web-fork"`), which is
 * why identity is checked here and not by the library.
 */
export function anchoredRegExp(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

function resolveTrustedRoot(nameOrFile: string, path: string, ctx: CompileContext): unknown {
  if (Object.prototype.hasOwnProperty.call(ctx.roots, nameOrFile)) return ctx.roots[nameOrFile];
  if (!nameOrFile.endsWith('.json')) {
    ctx.problems.push({ path, message: `unknown trusted root (known: ${Object.keys(ctx.roots).join(', ')}; or give a .json file)` });
    return undefined;
  }
  const file = resolve(ctx.options.baseDir, nameOrFile);
  if (ctx.rootDocuments.has(file)) return ctx.rootDocuments.get(file);
  const text = readConfigFile(nameOrFile, path, ctx);
  if (text === undefined) return undefined;
  try {
    const doc: unknown = JSON.parse(text);
    ctx.rootDocuments.set(file, doc);
    return doc;
  } catch {
    ctx.problems.push({ path, message: 'the trusted root file is not JSON' });
    return undefined;
  }
}

function readConfigFile(file: string, path: string, ctx: CompileContext): string | undefined {
  const full = isAbsolute(file) ? file : resolve(ctx.options.baseDir, file);
  try {
    return readFileSync(full, 'utf8');
  } catch (err) {
    ctx.problems.push({ path, message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    return undefined;
  }
}

function loadKey(pem: string, path: string, ctx: CompileContext): VerificationKey | undefined {
  try {
    return loadVerificationKey(pem);
  } catch (err) {
    ctx.problems.push({ path, message: (err as Error).message });
    return undefined;
  }
}

function joinPath(base: string, path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : `${acc}.${String(part)}`), base);
}

function configInvalid(problems: ConfigProblem[]): StagegateError {
  const first = problems[0]!;
  return new StagegateError('CONFIG_INVALID', `${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`, {
    details: { problems },
  });
}

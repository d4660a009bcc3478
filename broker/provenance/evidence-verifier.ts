import { createHash } from 'node:crypto';
import { StagegateError } from '../../sdk/errors';
import { escapeRegExp, fillClaimTemplate, type ClaimTemplate } from './claim-template';
import { anchoredRegExp, isCompiledRequirements, type CompiledRequirementItem, type CompiledRequirements } from './compile-requirements';
import { verifyDsseEnvelope } from './dsse-envelope';
import { toEvidenceItem } from './evidence-document';
import { checkEvidenceLimits } from './evidence-limits';
import { artifactListSchema, evidenceItemSchema, type DeclaredArtifact, type EvidenceItem } from './evidence-schema';
import { isRecord, parseInTotoStatement, type InTotoStatement } from './in-toto-statement';
import { CheckFailure, type CheckResult, type ProvenanceCheck } from './provenance-check';
import type { BindableFact } from './requirements-schema';
import { verifySigstoreBundle } from './sigstore-bundle';
import { normalizeRepo, readSlsaFacts, slsaVersionOf, type SlsaFacts } from './slsa-provenance';

/** Default bound on one request's verification, milliseconds. */
export const DEFAULT_VERIFY_TIMEOUT_MS = 5_000;

/** An evidence item as reports name it: its index in the request and a digest, never content. */
export interface EvidenceRef {
  readonly index: number;
  /** Hex SHA-256 of the item's compact JSON. */
  readonly sha256: string;
}

/** Facts established by one verified evidence item. */
export interface ProvenanceFacts {
  readonly evidence: EvidenceRef;
  readonly signer:
    | { readonly kind: 'certificate'; readonly identity: string; readonly issuer: string }
    | { readonly kind: 'key'; readonly fingerprint: string };
  /** Attested subjects with a SHA-256 digest (for a message signature: the signed artifact). */
  readonly subjects: ReadonlyArray<{ readonly name?: string; readonly sha256: string }>;
  readonly predicateType?: string;
  readonly slsa?: SlsaFacts;
}

/** What `verifyEvidence` resolves to: each satisfied requirement item and its facts. */
export interface VerifiedProvenance {
  readonly satisfied: ReadonlyArray<{ readonly requirement: string; readonly facts: ProvenanceFacts }>;
}

/** One (requirement item, evidence item) attempt: checks in order, stopping at the first failure. */
export interface AttemptReport {
  readonly evidence: EvidenceRef | null;
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

export interface ItemReport {
  readonly requirement: string;
  readonly ok: boolean;
  readonly attempts: readonly AttemptReport[];
}

/** The best failure of a requirement entry: the attempt that got furthest. */
export interface RequirementFailure {
  readonly requirement: string;
  readonly check: ProvenanceCheck;
  readonly reason: string;
  readonly evidence: EvidenceRef | null;
}

export interface EntryReport {
  readonly requirement: string;
  readonly ok: boolean;
  /** One report per item: one for a plain entry, one per alternative for `anyOf`. */
  readonly items: readonly ItemReport[];
  readonly failure?: RequirementFailure;
}

/** The per-requirement, per-check report of {@link explainEvidence}. */
export interface EvidenceReport {
  readonly ok: boolean;
  readonly requirements: readonly EntryReport[];
  readonly failures: readonly RequirementFailure[];
}

/**
 * The evidence a stage presents, as it arrived in the request body: items are
 * validated here (limits, then {@link evidenceItemSchema}), so a caller may pass the
 * raw parsed JSON. Untyped Sigstore bundles and DSSE envelopes (what `stagegate run
 * --evidence FILE` sends) are recognised by {@link toEvidenceItem}. An item of a known
 * `type` with a bad shape fails its requirements as `malformed`; others are ignored.
 */
export interface EvidenceInput {
  readonly evidence?: readonly unknown[];
  readonly artifacts?: readonly DeclaredArtifact[];
}

export interface VerifyEvidenceOptions {
  /** Millisecond clock for the time bound; default `Date.now`. */
  readonly now?: () => number;
  /** Bound on the whole verification, milliseconds; default {@link DEFAULT_VERIFY_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/** Verified identity-token claims (e.g. GitHub's `repository`, `sha`, `ref`). */
export type TokenClaims = Readonly<Record<string, unknown>>;

/**
 * Verify a stage's evidence against its compiled requirements: every entry must pass,
 * an `anyOf` entry when one alternative passes, an item when one evidence item of its
 * kind passes every check. Pure: no HTTP, no store, no network (Sigstore is offline).
 *
 * The time bound is cooperative: checked before each (requirement, evidence) attempt,
 * and the event loop is yielded between attempts. One attempt is bounded by the
 * evidence size limits (a few milliseconds).
 *
 * @throws StagegateError `INVALID_REQUEST` / `PAYLOAD_TOO_LARGE` when the evidence
 *   breaks the limits of {@link checkEvidenceLimits} or the artifacts are malformed.
 * @throws StagegateError `PROVENANCE_FAILED` (403) whose details list, per failed
 *   requirement, its path, the evidence item (index and digest) and the check:
 *   `{ failures: RequirementFailure[] }`. Nothing of the evidence but digests is echoed.
 */
export async function verifyEvidence(
  compiled: CompiledRequirements,
  input: EvidenceInput,
  claims: TokenClaims,
  options: VerifyEvidenceOptions = {},
): Promise<VerifiedProvenance> {
  const { report, satisfied } = await evaluate(compiled, input, claims, options);
  if (!report.ok) {
    const [first] = report.failures;
    const more = report.failures.length > 1 ? ` (and ${report.failures.length - 1} more requirement(s))` : '';
    throw new StagegateError(
      'PROVENANCE_FAILED',
      `provenance requirement ${first!.requirement} not met: ${first!.check} — ${first!.reason}${more}`,
      { details: { failures: report.failures } },
    );
  }
  return { satisfied };
}

/**
 * The same checks as {@link verifyEvidence}, returned as a report (for `stagegate verify`
 * dry runs) instead of thrown.
 */
export async function explainEvidence(
  compiled: CompiledRequirements,
  input: EvidenceInput,
  claims: TokenClaims,
  options: VerifyEvidenceOptions = {},
): Promise<EvidenceReport> {
  return (await evaluate(compiled, input, claims, options)).report;
}

async function evaluate(
  compiled: CompiledRequirements,
  input: EvidenceInput,
  claims: TokenClaims,
  options: VerifyEvidenceOptions,
): Promise<{ report: EvidenceReport; satisfied: Array<{ requirement: string; facts: ProvenanceFacts }> }> {
  if (!isCompiledRequirements(compiled)) throw new TypeError('verifyEvidence needs the result of compileRequirements');
  const now = options.now ?? Date.now;
  const deadline = now() + (options.timeoutMs ?? DEFAULT_VERIFY_TIMEOUT_MS);
  checkEvidenceLimits(input.evidence);
  const evidence = (input.evidence ?? []).map((raw, index) => {
    const normalized = toEvidenceItem(raw);
    const parsed = evidenceItemSchema.safeParse(normalized);
    const type: unknown = isRecord(normalized) ? normalized.type : undefined;
    return {
      type,
      item: parsed.success ? parsed.data : undefined,
      ref: { index, sha256: createHash('sha256').update(JSON.stringify(raw)).digest('hex') },
    };
  });
  const declared = artifactListSchema.safeParse(input.artifacts ?? []);
  if (!declared.success) {
    throw new StagegateError('INVALID_REQUEST', 'artifacts must be a list of { name?, digest: { sha256 } }', {
      details: { path: 'artifacts', problems: declared.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  const artifacts = declared.data.map((a) => a.digest.sha256.toLowerCase());
  const satisfied: Array<{ requirement: string; facts: ProvenanceFacts }> = [];
  let timedOut = false;

  const runItem = async (item: CompiledRequirementItem): Promise<{ report: ItemReport; facts?: ProvenanceFacts }> => {
    const candidates = evidence.filter((e) => e.type === item.kind);
    if (candidates.length === 0) {
      const checks = [fail('no-evidence', `no ${item.kind} evidence item was presented`)];
      return { report: { requirement: item.path, ok: false, attempts: [{ evidence: null, ok: false, checks }] } };
    }
    const attempts: AttemptReport[] = [];
    for (const { item: ev, ref } of candidates) {
      if (timedOut || now() >= deadline) {
        timedOut = true;
        attempts.push({ evidence: ref, ok: false, checks: [fail('timeout', 'verification did not finish in time')] });
        break;
      }
      const outcome = ev
        ? attemptItem(item, ev, ref, artifacts, claims)
        : { checks: [fail('malformed', `the ${item.kind} evidence item does not have the expected shape`)] };
      attempts.push({ evidence: ref, ok: outcome.facts !== undefined, checks: outcome.checks });
      if (outcome.facts) return { report: { requirement: item.path, ok: true, attempts }, facts: outcome.facts };
      // Let other requests run between attempts: verification is CPU-bound.
      await new Promise<void>((r) => setImmediate(r));
    }
    return { report: { requirement: item.path, ok: false, attempts } };
  };

  const entries: EntryReport[] = [];
  for (const entry of compiled.entries) {
    const items = entry.kind === 'item' ? [entry.item] : entry.items;
    const reports: ItemReport[] = [];
    let passed: { requirement: string; facts: ProvenanceFacts } | undefined;
    for (const item of items) {
      const { report, facts } = await runItem(item);
      reports.push(report);
      if (facts) {
        passed = { requirement: item.path, facts };
        break;
      }
    }
    if (passed) {
      satisfied.push(passed);
      entries.push({ requirement: entry.path, ok: true, items: reports });
    } else {
      entries.push({ requirement: entry.path, ok: false, items: reports, failure: bestFailure(reports) });
    }
  }
  const failures = entries.flatMap((e) => (e.failure ? [e.failure] : []));
  return { report: { ok: failures.length === 0, requirements: entries, failures }, satisfied };
}

/** The failing attempt that passed the most checks (ties: the earliest), as a summary. */
function bestFailure(items: readonly ItemReport[]): RequirementFailure {
  let best: { requirement: string; attempt: AttemptReport } | undefined;
  for (const item of items) {
    for (const attempt of item.attempts) {
      if (!best || attempt.checks.length > best.attempt.checks.length) best = { requirement: item.requirement, attempt };
    }
  }
  const last = best!.attempt.checks[best!.attempt.checks.length - 1]!;
  return { requirement: best!.requirement, check: last.check, reason: last.reason, evidence: best!.attempt.evidence };
}

function pass(check: ProvenanceCheck, reason: string): CheckResult {
  return { check, ok: true, reason };
}

function fail(check: ProvenanceCheck, reason: string): CheckResult {
  return { check, ok: false, reason };
}

/**
 * Run one requirement item's checks on one evidence item, in order: signature and
 * transparency log, signer identity, subject digests, SLSA predicate, claim bindings.
 * Returns facts only when every check passed.
 */
function attemptItem(
  item: CompiledRequirementItem,
  ev: EvidenceItem,
  ref: EvidenceRef,
  artifacts: readonly string[],
  claims: TokenClaims,
): { checks: CheckResult[]; facts?: ProvenanceFacts } {
  const checks: CheckResult[] = [];
  try {
    let statement: InTotoStatement | undefined;
    let signer: ProvenanceFacts['signer'];
    let messageSha256: string | undefined;

    if (ev.type === 'dsse') {
      const verified = verifyDsseEnvelope(ev.envelope, item.dsseKeys ?? []);
      checks.push(pass('signature', 'an envelope signature verifies under a configured key'));
      signer = { kind: 'key', fingerprint: verified.keyFingerprint };
      statement = parseInTotoStatement(verified.payloadType, verified.payload);
    } else {
      const verified = verifySigstoreBundle(ev.bundle, item.sigstore!.trust);
      checks.push(pass('signature', 'the bundle signature, certificate chain and timestamps verify against the trusted root'));
      checks.push(pass('tlog-proof', 'the transparency-log entry verifies offline'));
      const identity = item.sigstore!.identity;
      if (identity) {
        checkIdentity(identity, verified.identity, verified.issuer, claims, checks);
        signer = { kind: 'certificate', identity: verified.identity!, issuer: verified.issuer! };
      } else {
        signer = { kind: 'key', fingerprint: verified.keyFingerprint! };
      }
      if (verified.content.kind === 'dsse') statement = parseInTotoStatement(verified.content.payloadType, verified.content.payload);
      else messageSha256 = verified.content.sha256;
    }

    const subjects = statement
      ? statement.subjects.flatMap((s) => (s.sha256 ? [{ ...(s.name ? { name: s.name } : {}), sha256: s.sha256 }] : []))
      : [{ sha256: messageSha256! }];
    checkSubjects(item, subjects, artifacts, checks);

    const version = statement ? slsaVersionOf(statement) : undefined;
    const slsa = statement && version ? readSlsaFacts(statement, version) : undefined;
    if (item.slsa) checkSlsa(item, statement, slsa, claims, checks);

    const facts: ProvenanceFacts = {
      evidence: ref,
      signer,
      subjects,
      ...(statement ? { predicateType: statement.predicateType } : {}),
      ...(slsa ? { slsa } : {}),
    };
    for (const binding of item.bindings) {
      const expected = fill(binding.equals, claims);
      const actual = factValue(facts, binding.fact);
      if (actual === undefined || !sameFact(binding.fact, actual, expected)) {
        throw new CheckFailure('binding', `the provenance's ${binding.fact} does not equal the token value (${binding.path})`);
      }
      checks.push(pass('binding', `${binding.fact} matches the token (${binding.path})`));
    }
    return { checks, facts };
  } catch (err) {
    if (err instanceof CheckFailure) checks.push(fail(err.check, err.reason));
    else checks.push(fail('malformed', 'the evidence item could not be processed'));
    return { checks };
  }
}

function fill(template: ClaimTemplate, claims: TokenClaims, escape?: (v: string) => string): string {
  const filled = fillClaimTemplate(template, claims, escape);
  if (!filled.ok) {
    // Fail closed: a policy value that cannot be computed matches nothing. The claim's
    // *name* comes from the policy, so it is safe to report.
    throw new CheckFailure('claim-missing', `the identity token has no usable "${filled.missingClaim}" claim`);
  }
  return filled.value;
}

function checkIdentity(
  identity: NonNullable<NonNullable<CompiledRequirementItem['sigstore']>['identity']>,
  san: string | undefined,
  issuer: string | undefined,
  claims: TokenClaims,
  checks: CheckResult[],
): void {
  let matches = false;
  if (san !== undefined) {
    if (identity.exact) matches = san === fill(identity.exact, claims);
    else if (identity.pattern) {
      const re = identity.pattern.fixed ?? anchoredRegExp(fill(identity.pattern.template, claims, escapeRegExp));
      matches = re.test(san);
    }
  }
  if (!matches) throw new CheckFailure('certificate-identity', 'the certificate identity (SAN) is not the required identity');
  checks.push(pass('certificate-identity', 'the certificate identity matches'));
  if (issuer === undefined || issuer !== fill(identity.issuer, claims)) {
    throw new CheckFailure('issuer', 'the certificate OIDC issuer is not the required issuer');
  }
  checks.push(pass('issuer', 'the certificate OIDC issuer matches'));
}

function checkSubjects(
  item: CompiledRequirementItem,
  subjects: ReadonlyArray<{ sha256: string }>,
  artifacts: readonly string[],
  checks: CheckResult[],
): void {
  if (artifacts.length === 0) {
    if (item.requireArtifact) throw new CheckFailure('digest-mismatch', 'the requirement needs a declared artifact and the stage declared none');
    return;
  }
  for (const digest of artifacts) {
    if (!subjects.some((s) => s.sha256 === digest)) {
      throw new CheckFailure('digest-mismatch', 'a declared artifact digest is not among the attested subjects');
    }
  }
  checks.push(pass('digest-mismatch', 'every declared artifact digest is an attested subject'));
}

function checkSlsa(
  item: CompiledRequirementItem,
  statement: InTotoStatement | undefined,
  slsa: SlsaFacts | undefined,
  claims: TokenClaims,
  checks: CheckResult[],
): void {
  const policy = item.slsa!;
  if (!statement) throw new CheckFailure('predicate-type', 'a message signature carries no SLSA provenance');
  if (!slsa || !policy.predicateTypes.has(statement.predicateType)) {
    throw new CheckFailure('predicate-type', 'the statement is not SLSA provenance of an accepted version');
  }
  checks.push(pass('predicate-type', `SLSA provenance ${slsa.version}`));
  if (slsa.builderId === undefined || !policy.builderIds.has(slsa.builderId)) {
    throw new CheckFailure('builder', 'the builder id is not in the allow-list');
  }
  checks.push(pass('builder', 'the builder id is allowed'));
  if (policy.buildTypes) {
    if (slsa.buildType === undefined || !policy.buildTypes.has(slsa.buildType)) {
      throw new CheckFailure('build-type', 'the build type is not allowed');
    }
    checks.push(pass('build-type', 'the build type is allowed'));
  }
  const fields: Array<[ClaimTemplate | undefined, 'sourceRepo' | 'sourceRef' | 'sourceDigest', ProvenanceCheck, string]> = [
    [policy.sourceRepo, 'sourceRepo', 'source-repo', 'source repository'],
    [policy.sourceRef, 'sourceRef', 'source-ref', 'source ref'],
    [policy.sourceDigest, 'sourceDigest', 'source-digest', 'source commit digest'],
  ];
  for (const [template, fact, check, label] of fields) {
    if (!template) continue;
    const expected = fill(template, claims);
    const actual = slsa[fact];
    if (actual === undefined || !sameFact(fact, actual, expected)) {
      throw new CheckFailure(check, `the provenance's ${label} is not the required one`);
    }
    checks.push(pass(check, `the ${label} matches`));
  }
}

function factValue(facts: ProvenanceFacts, fact: BindableFact): string | undefined {
  switch (fact) {
    case 'signerIdentity':
      return facts.signer.kind === 'certificate' ? facts.signer.identity : undefined;
    case 'signerIssuer':
      return facts.signer.kind === 'certificate' ? facts.signer.issuer : undefined;
    case 'predicateType':
      return facts.predicateType;
    default:
      return facts.slsa?.[fact];
  }
}

/** Compare a provenance fact with a policy value, normalising where the formats legitimately differ. */
function sameFact(fact: BindableFact, actual: string, expected: string): boolean {
  if (fact === 'sourceRepo') return normalizeRepo(actual) === normalizeRepo(expected);
  if (fact === 'sourceDigest') return actual.toLowerCase() === expected.toLowerCase();
  return actual === expected;
}

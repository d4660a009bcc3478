import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileRequirements, verifyEvidence, type ProvenanceCheck } from '../../broker/provenance';
import { isStagegateError } from '../../sdk/errors';

/**
 * The public sigstore-conformance bundle-verify cases (test/fixtures/sigstore-conformance,
 * see its SOURCE.md), verified offline. Their certificates expired long ago: they pass
 * because Sigstore checks certificates at the transparency-log / TSA time.
 */
const FIXTURES = join(__dirname, '..', 'fixtures', 'sigstore-conformance');
const DEFAULT_IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';

/** The check each `_fail` case must be denied with. */
const EXPECTED_FAILURE: Record<string, ProvenanceCheck> = {
  'dsse-invalid-sig_fail': 'tlog-proof',
  'incorrect-public-key_fail': 'tlog-proof',
  'intoto-expired-certificate_fail': 'certificate-expired',
  'signature-mismatch_fail': 'tlog-proof',
  'wrong-material_fail': 'digest-mismatch',
};

const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function caseRequirements(dir: string): unknown {
  const trustedRoot = existsSync(join(dir, 'trusted_root.json')) ? 'trusted_root.json' : 'public-good';
  const sigstore = existsSync(join(dir, 'key.pub'))
    ? { publicKeyFile: 'key.pub', trustedRoot }
    : { identity: DEFAULT_IDENTITY, issuer: DEFAULT_ISSUER, trustedRoot };
  return [{ sigstore }];
}

function artifactDigest(dir: string): string {
  const file = existsSync(join(dir, 'artifact')) ? join(dir, 'artifact') : join(FIXTURES, 'a.txt');
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

describe('sigstore-conformance bundle-verify cases, offline', () => {
  it('covers every copied case', () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const name of cases.filter((c) => c.endsWith('_fail'))) expect(EXPECTED_FAILURE[name]).toBeDefined();
  });

  it.each(cases)('%s', async (name) => {
    const dir = join(FIXTURES, name);
    const compiled = compileRequirements(caseRequirements(dir), { baseDir: dir });
    const bundle = JSON.parse(readFileSync(join(dir, 'bundle.sigstore.json'), 'utf8')) as Record<string, unknown>;
    const input = { evidence: [{ type: 'sigstore' as const, bundle }], artifacts: [{ digest: { sha256: artifactDigest(dir) } }] };
    const verifying = verifyEvidence(compiled, input, {});
    if (!name.endsWith('_fail')) {
      const verified = await verifying;
      expect(verified.satisfied).toHaveLength(1);
      expect(verified.satisfied[0]!.facts.subjects.map((s) => s.sha256)).toContain(artifactDigest(dir));
      return;
    }
    const err: unknown = await verifying.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStagegateError(err, 'PROVENANCE_FAILED')).toBe(true);
    const failures = (err as { details: { failures: Array<{ check: string; requirement: string; evidence: { index: number } }> } }).details.failures;
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ requirement: 'requires[0]', check: EXPECTED_FAILURE[name], evidence: { index: 0 } });
  });
});

describe('sigstore requirements on a real GitHub attestation (happy-path-intoto-in-dsse-v3)', () => {
  const dir = join(FIXTURES, 'happy-path-intoto-in-dsse-v3');
  const bundle = JSON.parse(readFileSync(join(dir, 'bundle.sigstore.json'), 'utf8')) as Record<string, unknown>;
  const input = { evidence: [{ type: 'sigstore' as const, bundle }], artifacts: [{ name: 'a.txt', digest: { sha256: artifactDigest(dir) } }] };
  const builder = 'https://github.com/loosebazooka/aa-test/.github/workflows/provenance.yaml@refs/heads/main';
  const claims = { repository: 'loosebazooka/aa-test', sha: 'ebff8dfbd609b7b22237c7719ce07f2dc7934f5f', ref: 'refs/heads/main' };
  const slsa = { builderIds: [builder], sourceRepo: 'https://github.com/{repository}', sourceRef: '{ref}', sourceDigest: '{sha}' };

  async function checkOf(requires: unknown, tokenClaims: Record<string, unknown> = claims): Promise<string | undefined> {
    const compiled = compileRequirements(requires, { baseDir: dir });
    try {
      await verifyEvidence(compiled, input, tokenClaims);
      return undefined;
    } catch (err) {
      if (!isStagegateError(err, 'PROVENANCE_FAILED')) throw err;
      return (err.details as { failures: Array<{ check: string }> }).failures[0]!.check;
    }
  }

  it('passes identity, issuer, SLSA v1 and claim bindings, and returns the facts', async () => {
    const compiled = compileRequirements(
      [{ sigstore: { identity: DEFAULT_IDENTITY, issuer: DEFAULT_ISSUER }, slsa, bindings: [{ fact: 'sourceDigest', claim: 'sha' }] }],
      { baseDir: dir },
    );
    const { satisfied } = await verifyEvidence(compiled, input, claims);
    expect(satisfied[0]!.facts).toMatchObject({
      signer: { kind: 'certificate', identity: DEFAULT_IDENTITY, issuer: DEFAULT_ISSUER },
      predicateType: 'https://slsa.dev/provenance/v1',
      slsa: { builderId: builder, sourceRepo: 'https://github.com/loosebazooka/aa-test', sourceRef: 'refs/heads/main', sourceDigest: claims.sha },
    });
  });

  it.each([
    ['another identity', { identity: `${DEFAULT_IDENTITY}x`, issuer: DEFAULT_ISSUER }, 'certificate-identity'],
    ['another issuer', { identity: DEFAULT_IDENTITY, issuer: 'https://gitlab.com' }, 'issuer'],
    // Unanchored, this pattern would match the SAN; anchored to the whole SAN it must not.
    ['a pattern matching only part of the SAN', { identityRegex: 'sigstore-conformance/extremely-dangerous', issuer: DEFAULT_ISSUER }, 'certificate-identity'],
    ['a placeholder for a claim the token lacks', { identity: 'https://github.com/{workflow_ref}', issuer: DEFAULT_ISSUER }, 'claim-missing'],
    ['a public key where the bundle has a certificate', { publicKeyFile: '../managed-key-happy-path/key.pub' }, 'signature'],
  ])('denies %s', async (_name, sigstore, check) => {
    expect(await checkOf([{ sigstore }])).toBe(check);
  });

  it('accepts a whole-SAN pattern with a regex-escaped placeholder', async () => {
    const identityRegex = 'https://github\\.com/sigstore-conformance/{workflow}/\\.github/workflows/[a-z-]+\\.yml@refs/heads/main';
    expect(await checkOf([{ sigstore: { identityRegex, issuer: DEFAULT_ISSUER } }], { workflow: 'extremely-dangerous-public-oidc-beacon' })).toBeUndefined();
    // A claim value with regex metacharacters is matched literally, not as a pattern.
    expect(await checkOf([{ sigstore: { identityRegex, issuer: DEFAULT_ISSUER } }], { workflow: '.*' })).toBe('certificate-identity');
  });

  it.each([
    ['another builder', { ...slsa, builderIds: ['https://github.com/actions/runner/github-hosted'] }, claims, 'builder'],
    ['another build type', { ...slsa, buildTypes: ['https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1'] }, claims, 'build-type'],
    ['a token from another repository', slsa, { ...claims, repository: 'acme/aa-test' }, 'source-repo'],
    ['a token from another ref', slsa, { ...claims, ref: 'refs/heads/dev' }, 'source-ref'],
    ['a token whose sha is not the attested commit', slsa, { ...claims, sha: 'a'.repeat(40) }, 'source-digest'],
    ['SLSA v0.2 only', { ...slsa, versions: ['v0.2'] }, claims, 'predicate-type'],
  ])('denies %s', async (_name, slsaPolicy, tokenClaims, check) => {
    expect(await checkOf([{ sigstore: { identity: DEFAULT_IDENTITY, issuer: DEFAULT_ISSUER }, slsa: slsaPolicy }], tokenClaims)).toBe(check);
  });

  it('denies SLSA checks on a message-signature bundle (it carries no provenance)', async () => {
    const msgDir = join(FIXTURES, 'happy-path-v0.3');
    const compiled = compileRequirements([{ sigstore: { identity: DEFAULT_IDENTITY, issuer: DEFAULT_ISSUER }, slsa }], { baseDir: msgDir });
    const msgBundle = JSON.parse(readFileSync(join(msgDir, 'bundle.sigstore.json'), 'utf8')) as Record<string, unknown>;
    await expect(verifyEvidence(compiled, { evidence: [{ type: 'sigstore', bundle: msgBundle }] }, claims)).rejects.toMatchObject({
      code: 'PROVENANCE_FAILED',
      details: { failures: [{ check: 'predicate-type' }] },
    });
  });

  it('denies a managed-key bundle checked against another key', async () => {
    const keyDir = join(FIXTURES, 'managed-key-happy-path');
    const { generateKeyPairSync } = await import('node:crypto');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const compiled = compileRequirements([{ sigstore: { publicKey: other } }], { baseDir: keyDir });
    const keyBundle = JSON.parse(readFileSync(join(keyDir, 'bundle.sigstore.json'), 'utf8')) as Record<string, unknown>;
    await expect(verifyEvidence(compiled, { evidence: [{ type: 'sigstore', bundle: keyBundle }] }, {})).rejects.toMatchObject({
      details: { failures: [{ check: 'signature' }] },
    });
  });
});

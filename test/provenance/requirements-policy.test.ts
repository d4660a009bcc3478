import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileRequirements, requirementsSchema, verifyEvidence, type EvidenceItem } from '../../broker/provenance';
import { isStagegateError } from '../../sdk/errors';
import { GITHUB_BUILD_TYPE, GITHUB_HOSTED_BUILDER, makeKey, signEnvelope, slsaV1Statement } from './make-attestation';

const ARTIFACT = createHash('sha256').update('artifact').digest('hex');
const COMMIT = 'c5f5fb255163ed85ddb32d54dcdd710ac3f04603';
const release = makeKey('ecdsa-p256');
const nightly = makeKey('ed25519');
const unknown = makeKey('rsa');

const attest = (key: ReturnType<typeof makeKey>, repo = 'https://github.com/acme/web'): EvidenceItem => ({
  type: 'dsse',
  envelope: signEnvelope(
    slsaV1Statement({ subjects: [{ name: 'a', sha256: ARTIFACT }], builderId: GITHUB_HOSTED_BUILDER, buildType: GITHUB_BUILD_TYPE, repo, ref: 'refs/heads/main', commit: COMMIT }),
    key,
  ),
});
const slsa = { builderIds: [GITHUB_HOSTED_BUILDER], sourceRepo: 'https://github.com/{repository}', sourceDigest: '{sha}' };
const byRelease = { dsse: { keys: [release.publicPem] }, slsa };
const byNightly = { dsse: { keys: [nightly.publicPem] }, slsa };
const CLAIMS = { repository: 'acme/web', sha: COMMIT };

type Row = [name: string, requires: unknown[], evidence: EvidenceItem[], claims: Record<string, unknown>, failures: Array<[string, string]>];

const rows: Row[] = [
  ['no requirements: nothing to prove', [], [], CLAIMS, []],
  ['all-of: both present', [byRelease, byNightly], [attest(release), attest(nightly)], CLAIMS, []],
  ['all-of: one missing, that one is reported', [byRelease, byNightly], [attest(release)], CLAIMS, [['requires[1]', 'signature']]],
  ['all-of: both failing, each requirement reported', [byRelease, byNightly], [attest(unknown)], CLAIMS, [['requires[0]', 'signature'], ['requires[1]', 'signature']]],
  ['any-of: the second alternative passes', [{ anyOf: [byRelease, byNightly] }], [attest(nightly)], CLAIMS, []],
  ['any-of: none passes, the furthest attempt is named', [{ anyOf: [byRelease, byNightly] }], [attest(nightly, 'https://github.com/evil/web')], CLAIMS, [['requires[0].anyOf[1]', 'source-repo']]],
  ['mixed: all-of with an any-of', [byRelease, { anyOf: [byNightly, { dsse: { keys: [unknown.publicPem] } }] }], [attest(release), attest(unknown)], CLAIMS, []],
  ['placeholders filled from the token', [byRelease], [attest(release)], { repository: 'acme/web', sha: COMMIT.toUpperCase() }, []],
  ['placeholder value from another repository', [byRelease], [attest(release)], { repository: 'evil/web', sha: COMMIT }, [['requires[0]', 'source-repo']]],
  ['missing claim fails closed', [byRelease], [attest(release)], { sha: COMMIT }, [['requires[0]', 'claim-missing']]],
  ['empty-string claim fails closed', [byRelease], [attest(release)], { repository: '', sha: COMMIT }, [['requires[0]', 'claim-missing']]],
  ['structured claim fails closed', [byRelease], [attest(release)], { repository: { name: 'acme/web' }, sha: COMMIT }, [['requires[0]', 'claim-missing']]],
  ['no evidence for a sigstore requirement', [{ sigstore: { identity: 'x', issuer: 'y' } }], [attest(release)], CLAIMS, [['requires[0]', 'no-evidence']]],
];

describe('requirements policy', () => {
  it.each(rows)('%s', async (_name, requires, evidence, claims, expected) => {
    const compiled = compileRequirements(requires, { baseDir: __dirname, path: 'stages.deploy.requires' });
    const outcome = await verifyEvidence(compiled, { evidence, artifacts: [{ digest: { sha256: ARTIFACT } }] }, claims).then(
      () => [] as Array<[string, string]>,
      (err: unknown) => {
        if (!isStagegateError(err, 'PROVENANCE_FAILED')) throw err;
        return (err.details as { failures: Array<{ requirement: string; check: string }> }).failures.map((f) => [f.requirement.replace('stages.deploy.', ''), f.check] as [string, string]);
      },
    );
    expect(outcome).toEqual(expected);
  });

  it('keeps the issue example valid', () => {
    const parsed = requirementsSchema.safeParse([
      {
        sigstore: { identity: 'https://github.com/acme/web/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' },
        slsa: { builderIds: ['https://github.com/actions/runner/github-hosted'], sourceRepo: 'https://github.com/{repository}', sourceDigest: '{sha}' },
      },
    ]);
    expect(parsed.success).toBe(true);
    expect(() => compileRequirements(parsed.data, { baseDir: __dirname })).not.toThrow();
  });

  it('loads keys from files relative to baseDir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stagegate-keys-'));
    writeFileSync(join(dir, 'release.pub'), release.publicPem);
    const compiled = compileRequirements([{ dsse: { keyFiles: ['release.pub'] } }], { baseDir: dir });
    await expect(verifyEvidence(compiled, { evidence: [attest(release)] }, {})).resolves.toMatchObject({ satisfied: [{ requirement: 'requires[0]' }] });
  });

  const badConfigs: Array<[string, unknown, string]> = [
    ['neither sigstore nor dsse', [{ slsa }], 'stages.deploy.requires[0]'],
    ['both sigstore and dsse', [{ dsse: { keys: [release.publicPem] }, sigstore: { publicKey: release.publicPem } }], 'stages.deploy.requires[0]'],
    ['identity without issuer', [{ sigstore: { identity: 'x' } }], 'stages.deploy.requires[0].sigstore.issuer'],
    ['an unknown key', [{ dsse: { keys: [release.publicPem] }, slsa: { ...slsa, builderid: 'x' } }], 'stages.deploy.requires[0].slsa'],
    ['not a PEM key', [{ dsse: { keys: ['-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----'] } }], 'stages.deploy.requires[0].dsse.keys[0]'],
    ['a missing key file', [{ dsse: { keyFiles: ['nope.pub'] } }], 'stages.deploy.requires[0].dsse.keyFiles[0]'],
    ['an RSA key under 2048 bits', [{ dsse: { keys: [makeSmallRsa()] } }], 'stages.deploy.requires[0].dsse.keys[0]'],
    ['a bad placeholder', [{ ...byRelease, slsa: { ...slsa, sourceDigest: '{sha' } }], 'stages.deploy.requires[0].slsa.sourceDigest'],
    ['a bad identity pattern', [{ sigstore: { identityRegex: '(', issuer: 'x' } }], 'stages.deploy.requires[0].sigstore.identityRegex'],
    ['an unknown trusted root', [{ sigstore: { identity: 'x', issuer: 'y', trustedRoot: 'staging' } }], 'stages.deploy.requires[0].sigstore.trustedRoot'],
    ['an anyOf mixed with other keys', [{ anyOf: [byRelease], slsa }], 'stages.deploy.requires[0]'],
    ['a binding on an unknown fact', [{ ...byRelease, bindings: [{ fact: 'nope', claim: 'sha' }] }], 'stages.deploy.requires[0].bindings[0].fact'],
    ['an entry inside anyOf', [{ anyOf: [{ slsa }] }], 'stages.deploy.requires[0].anyOf[0]'],
  ];
  it.each(badConfigs)('names the path of %s', (_name, raw, path) => {
    let caught: unknown;
    try {
      compileRequirements(raw, { baseDir: __dirname, path: 'stages.deploy.requires' });
    } catch (err) {
      caught = err;
    }
    expect(isStagegateError(caught, 'CONFIG_INVALID')).toBe(true);
    const problems = (caught as { details: { problems: Array<{ path: string }> } }).details.problems;
    expect(problems.map((p) => p.path)).toContain(path);
  });
});

function makeSmallRsa(): string {
  return generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

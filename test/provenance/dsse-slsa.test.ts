import { createHash } from 'node:crypto';
import { compileRequirements, explainEvidence, verifyEvidence, type EvidenceItem } from '../../broker/provenance';
import { preAuthEncoding } from '../../broker/provenance';
import { isStagegateError } from '../../sdk/errors';
import {
  GITHUB_BUILD_TYPE,
  GITHUB_HOSTED_BUILDER,
  makeKey,
  signEnvelope,
  slsaV02Statement,
  slsaV1Statement,
  type BuildFacts,
  type KeyKind,
} from './make-attestation';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const ARTIFACT = sha256('web-1.2.3.tgz contents');
const COMMIT = 'ebff8dfbd609b7b22237c7719ce07f2dc7934f5f';
const CLAIMS = { repository: 'acme/web', sha: COMMIT, ref: 'refs/heads/main' };
const FACTS: BuildFacts = {
  subjects: [{ name: 'web-1.2.3.tgz', sha256: ARTIFACT }],
  builderId: GITHUB_HOSTED_BUILDER,
  buildType: GITHUB_BUILD_TYPE,
  repo: 'https://github.com/acme/web',
  ref: 'refs/heads/main',
  commit: COMMIT,
};
const KINDS: KeyKind[] = ['ecdsa-p256', 'ed25519', 'rsa'];
const keys = Object.fromEntries(KINDS.map((k) => [k, makeKey(k)])) as Record<KeyKind, ReturnType<typeof makeKey>>;
const stranger = makeKey('ecdsa-p256');

function requires(keyPem: string, extra: Record<string, unknown> = {}): unknown {
  return [
    {
      dsse: { keys: [keyPem] },
      slsa: { builderIds: [GITHUB_HOSTED_BUILDER], buildTypes: [GITHUB_BUILD_TYPE], sourceRepo: 'https://github.com/{repository}', sourceRef: '{ref}', sourceDigest: '{sha}' },
      bindings: [{ fact: 'sourceDigest', claim: 'sha' }, { fact: 'sourceRepo', equals: 'https://github.com/{repository}' }],
      ...extra,
    },
  ];
}

async function failedCheck(compiledRequires: unknown, evidence: EvidenceItem[], claims: Record<string, unknown> = CLAIMS, artifacts = [{ digest: { sha256: ARTIFACT } }]): Promise<string | undefined> {
  const compiled = compileRequirements(compiledRequires, { baseDir: __dirname });
  try {
    await verifyEvidence(compiled, { evidence, artifacts }, claims);
    return undefined;
  } catch (err) {
    if (!isStagegateError(err, 'PROVENANCE_FAILED')) throw err;
    return (err.details as { failures: Array<{ check: string }> }).failures[0]!.check;
  }
}

describe('DSSE preAuthEncoding', () => {
  it('is the DSSE v1 PAE with byte lengths', () => {
    expect(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
    expect(preAuthEncoding('é', Buffer.from('')).toString()).toBe('DSSEv1 2 é 0 ');
  });
});

describe.each(KINDS)('DSSE + SLSA attestations signed with %s', (kind) => {
  const key = keys[kind];
  const v1 = (f: Partial<BuildFacts> = {}): EvidenceItem => ({ type: 'dsse', envelope: signEnvelope(slsaV1Statement({ ...FACTS, ...f }), key) });

  it('accepts SLSA v1 provenance and resolves its facts', async () => {
    const compiled = compileRequirements(requires(key.publicPem), { baseDir: __dirname });
    const { satisfied } = await verifyEvidence(compiled, { evidence: [v1()], artifacts: [{ digest: { sha256: ARTIFACT } }] }, CLAIMS);
    expect(satisfied).toHaveLength(1);
    expect(satisfied[0]!.facts).toMatchObject({
      signer: { kind: 'key' },
      subjects: [{ name: 'web-1.2.3.tgz', sha256: ARTIFACT }],
      slsa: { version: 'v1', builderId: GITHUB_HOSTED_BUILDER, sourceRepo: FACTS.repo, sourceRef: FACTS.ref, sourceDigest: COMMIT },
    });
  });

  it('accepts SLSA v0.2 provenance (Statement v0.1, configSource with .git)', async () => {
    const evidence: EvidenceItem = { type: 'dsse', envelope: signEnvelope(slsaV02Statement(FACTS), key) };
    expect(await failedCheck(requires(key.publicPem), [evidence])).toBeUndefined();
  });

  it('denies a tampered payload', async () => {
    const item = v1();
    const statement = JSON.parse(Buffer.from(item.type === 'dsse' ? item.envelope.payload : '', 'base64').toString()) as { subject: Array<{ digest: { sha256: string } }> };
    statement.subject[0]!.digest.sha256 = sha256('evil');
    const tampered: EvidenceItem = { type: 'dsse', envelope: { ...(item as Extract<EvidenceItem, { type: 'dsse' }>).envelope, payload: Buffer.from(JSON.stringify(statement)).toString('base64') } };
    expect(await failedCheck(requires(key.publicPem), [tampered])).toBe('signature');
  });

  it('denies a signature by a key that is not configured', async () => {
    expect(await failedCheck(requires(stranger.publicPem), [v1()])).toBe('signature');
  });

  it.each([
    ['a builder not in the allow-list', { builderId: 'https://evil.example/builder' }, 'builder'],
    ['another build type', { buildType: 'https://evil.example/buildtype' }, 'build-type'],
    ['another source repository', { repo: 'https://github.com/evil/web' }, 'source-repo'],
    ['another source ref', { ref: 'refs/heads/evil' }, 'source-ref'],
    ['a subject that is not the declared artifact', { subjects: [{ name: 'web.tgz', sha256: sha256('other') }] }, 'digest-mismatch'],
  ])('denies %s', async (_name, change, check) => {
    expect(await failedCheck(requires(key.publicPem), [v1(change as Partial<BuildFacts>)])).toBe(check);
  });

  it("denies when the token's sha is not the attested commit (SLSA check and binding)", async () => {
    const other = { ...CLAIMS, sha: 'b'.repeat(40) };
    expect(await failedCheck(requires(key.publicPem), [v1()], other)).toBe('source-digest');
    const bindingOnly = [{ dsse: { keys: [key.publicPem] }, bindings: [{ fact: 'sourceDigest', claim: 'sha' }] }];
    expect(await failedCheck(bindingOnly, [v1()], CLAIMS)).toBeUndefined();
    expect(await failedCheck(bindingOnly, [v1()], other)).toBe('binding');
  });
});

describe('DSSE evidence edge cases', () => {
  const key = keys['ecdsa-p256'];

  it('denies an envelope whose payloadType is not in-toto, after its signature verified', async () => {
    const item: EvidenceItem = { type: 'dsse', envelope: signEnvelope(slsaV1Statement(FACTS), key, 'application/json') };
    expect(await failedCheck(requires(key.publicPem), [item])).toBe('malformed');
  });

  it('denies a signed payload that is not an in-toto statement', async () => {
    const item: EvidenceItem = { type: 'dsse', envelope: signEnvelope({ hello: 'world' }, key) };
    expect(await failedCheck(requires(key.publicPem), [item])).toBe('malformed');
  });

  it('denies a signed statement nested too deeply', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const item: EvidenceItem = { type: 'dsse', envelope: signEnvelope({ ...slsaV1Statement(FACTS), extra: deep }, key) };
    expect(await failedCheck(requires(key.publicPem), [item])).toBe('malformed');
  });

  it('says no-evidence when nothing of the required kind was sent', async () => {
    expect(await failedCheck(requires(key.publicPem), [])).toBe('no-evidence');
  });

  it('requireArtifact: denies when the stage declares no artifact', async () => {
    const item: EvidenceItem = { type: 'dsse', envelope: signEnvelope(slsaV1Statement(FACTS), key) };
    expect(await failedCheck(requires(key.publicPem), [item], CLAIMS, [])).toBeUndefined();
    expect(await failedCheck(requires(key.publicPem, { requireArtifact: true }), [item], CLAIMS, [])).toBe('digest-mismatch');
  });

  it('picks the passing item among several, and reports the attempt that got furthest when none passes', async () => {
    const bad = { type: 'dsse' as const, envelope: signEnvelope(slsaV1Statement(FACTS), stranger) };
    const wrongBuilder = { type: 'dsse' as const, envelope: signEnvelope(slsaV1Statement({ ...FACTS, builderId: 'x' }), key) };
    const good = { type: 'dsse' as const, envelope: signEnvelope(slsaV1Statement(FACTS), key) };
    const compiled = compileRequirements(requires(key.publicPem), { baseDir: __dirname });
    const artifacts = [{ digest: { sha256: ARTIFACT } }];
    const ok = await verifyEvidence(compiled, { evidence: [bad, wrongBuilder, good], artifacts }, CLAIMS);
    expect(ok.satisfied[0]!.facts.evidence.index).toBe(2);

    const report = await explainEvidence(compiled, { evidence: [bad, wrongBuilder], artifacts }, CLAIMS);
    expect(report.ok).toBe(false);
    expect(report.failures).toEqual([{ requirement: 'requires[0]', check: 'builder', reason: expect.any(String), evidence: { index: 1, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } }]);
    const attempts = report.requirements[0]!.items[0]!.attempts;
    expect(attempts[0]!.checks.map((c) => [c.check, c.ok])).toEqual([['signature', false]]);
    expect(attempts[1]!.checks.map((c) => [c.check, c.ok])).toEqual([
      ['signature', true],
      ['digest-mismatch', true],
      ['predicate-type', true],
      ['builder', false],
    ]);
  });
});

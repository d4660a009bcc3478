import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkEvidenceLimits,
  compileRequirements,
  evidenceListSchema,
  explainEvidence,
  toEvidenceItems,
  verifyEvidence,
  type EvidenceItem,
} from '../../broker/provenance';
import { StagegateError, isStagegateError } from '../../sdk/errors';
import { GITHUB_BUILD_TYPE, makeKey, signEnvelope, slsaV1Statement } from './make-attestation';

function caught(fn: () => unknown): StagegateError {
  try {
    fn();
  } catch (err) {
    if (err instanceof StagegateError) return err;
    throw err;
  }
  throw new Error('expected a StagegateError');
}

function nested(depth: number): unknown {
  // Built iteratively: the point is that nothing here recurses.
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

describe('checkEvidenceLimits', () => {
  it('passes absent evidence and a normal list', () => {
    expect(() => checkEvidenceLimits(undefined)).not.toThrow();
    expect(() => checkEvidenceLimits([{ type: 'dsse', envelope: { payloadType: 'x', payload: 'eA==', signatures: [] } }])).not.toThrow();
  });

  it.each([
    ['a non-array', { type: 'dsse' }, 'INVALID_REQUEST', 400],
    ['17 items', Array.from({ length: 17 }, () => ({})), 'PAYLOAD_TOO_LARGE', 413],
    ['an item over 256 KiB', [{ type: 'sigstore', bundle: { pad: 'x'.repeat(256 * 1024) } }], 'PAYLOAD_TOO_LARGE', 413],
    ['over 1 MiB in total', Array.from({ length: 5 }, () => ({ pad: 'x'.repeat(250 * 1024) })), 'PAYLOAD_TOO_LARGE', 413],
    ['an item nested 33 deep', [nested(33)], 'INVALID_REQUEST', 400],
  ])('refuses %s with a coded error', (_name, evidence, code, status) => {
    const err = caught(() => checkEvidenceLimits(evidence));
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
  });

  it('accepts nesting at the limit (32)', () => {
    expect(() => checkEvidenceLimits([nested(32)])).not.toThrow();
  });

  it('refuses a 200 000-deep item parsed from JSON without overflowing the stack', () => {
    const body = JSON.parse(`{"evidence":[${'['.repeat(200_000)}${']'.repeat(200_000)}]}`) as { evidence: unknown };
    const err = caught(() => checkEvidenceLimits(body.evidence));
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.details).toMatchObject({ path: 'evidence[0]', limit: 'evidence-depth', max: 32 });
  });
});

describe('malformed evidence', () => {
  const key = makeKey('ecdsa-p256');
  const compiledDsse = compileRequirements([{ dsse: { keys: [key.publicPem] } }], { baseDir: __dirname });
  const compiledSigstore = compileRequirements([{ sigstore: { identity: 'x', issuer: 'y' } }], { baseDir: __dirname });

  it.each([
    ['an unknown type', [{ type: 'pgp', data: 'x' }]],
    ['a DSSE envelope without signatures', [{ type: 'dsse', envelope: { payloadType: 'x', payload: 'eA==', signatures: [] } }]],
    ['non-base64 payload', [{ type: 'dsse', envelope: { payloadType: 'x', payload: '%%%', signatures: [{ sig: 'eA==' }] } }]],
    ['a bundle that is an array', [{ type: 'sigstore', bundle: [] }]],
  ])('the request schema refuses %s', (_name, evidence) => {
    expect(evidenceListSchema.safeParse(evidence).success).toBe(false);
  });

  it.each([
    ['garbage bundle', { type: 'sigstore', bundle: { mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', nope: 1 } }, compiledSigstore, 'malformed'],
    ['bundle with a corrupt certificate', { type: 'sigstore', bundle: corruptCertificateBundle() }, compiledSigstore, 'malformed'],
    ['DSSE signature that is not DER', { type: 'dsse', envelope: { payloadType: 'application/vnd.in-toto+json', payload: 'e30=', signatures: [{ sig: 'AAAA' }] } }, compiledDsse, 'signature'],
  ])('verification denies a %s with a coded error, without crashing', async (_name, item, compiled, check) => {
    const err: unknown = await verifyEvidence(compiled, { evidence: [item as EvidenceItem] }, {}).catch((e: unknown) => e);
    expect(isStagegateError(err, 'PROVENANCE_FAILED')).toBe(true);
    expect((err as StagegateError).details).toMatchObject({ failures: [{ requirement: 'requires[0]', check, evidence: { index: 0 } }] });
  });

  it('verifyEvidence validates raw request items itself: a bad-shaped item of a known type is malformed', async () => {
    const raw: unknown[] = [{ type: 'dsse', envelope: { payloadType: 'x', payload: 'eA==', signatures: 'nope' } }, { type: 'pgp' }];
    await expect(verifyEvidence(compiledDsse, { evidence: raw }, {})).rejects.toMatchObject({
      code: 'PROVENANCE_FAILED',
      details: { failures: [{ check: 'malformed', evidence: { index: 0 } }] },
    });
  });

  it('verifyEvidence applies the limits itself', async () => {
    await expect(verifyEvidence(compiledDsse, { evidence: Array.from({ length: 17 }, () => ({})) }, {})).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(verifyEvidence(compiledDsse, { evidence: [nested(40)] }, {})).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(verifyEvidence(compiledDsse, { evidence: [], artifacts: [{ digest: { sha256: 'xyz' } }] }, {})).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('refuses a hand-built "compiled" object (a caller bug, TypeError)', async () => {
    await expect(verifyEvidence({ entries: [] }, { evidence: [] }, {})).rejects.toBeInstanceOf(TypeError);
  });

  it('times out with check "timeout" when the time bound is spent', async () => {
    const item: EvidenceItem = { type: 'dsse', envelope: signEnvelope({ any: 1 }, key) };
    let t = 0;
    const err: unknown = await verifyEvidence(compiledDsse, { evidence: [item] }, {}, { timeoutMs: 10, now: () => (t += 20) }).catch((e: unknown) => e);
    expect(isStagegateError(err, 'PROVENANCE_FAILED')).toBe(true);
    expect((err as StagegateError).details).toMatchObject({ failures: [{ check: 'timeout', evidence: { index: 0 } }] });
  });
});

describe('denials echo nothing of the evidence but digests', () => {
  const MARK = 'Zq7SECRETMARK';
  const key = makeKey('ecdsa-p256');
  const artifact = createHash('sha256').update('a').digest('hex');
  const statement = slsaV1Statement({
    subjects: [{ name: `${MARK}-subject`, sha256: createHash('sha256').update('b').digest('hex') }],
    builderId: `https://${MARK}.example/builder`,
    buildType: `${GITHUB_BUILD_TYPE}#${MARK}`,
    repo: `https://github.com/${MARK}/web`,
    ref: `refs/heads/${MARK}`,
    commit: 'd'.repeat(40),
  });
  const evidence: EvidenceItem[] = [
    { type: 'dsse', envelope: { ...signEnvelope(statement, key), signatures: [{ keyid: MARK, sig: signEnvelope(statement, key).signatures[0]!.sig }] } },
    { type: 'dsse', envelope: signEnvelope({ ...statement, predicateType: `https://${MARK}` }, key) },
    { type: 'sigstore', bundle: { mediaType: `application/vnd.dev.sigstore.bundle.v0.3+json`, [MARK]: MARK } },
  ];
  const checks = [
    { dsse: { keys: [key.publicPem] }, slsa: { builderIds: ['https://github.com/actions/runner/github-hosted'] } },
    { dsse: { keys: [key.publicPem] }, slsa: { builderIds: [`https://${MARK}.example/builder`], sourceRepo: 'https://github.com/{repository}' } },
    { dsse: { keys: [key.publicPem] }, bindings: [{ fact: 'sourceRef', claim: 'ref' }] },
    { dsse: { keys: [key.publicPem] } },
    { sigstore: { identity: 'https://example/x', issuer: 'https://example' } },
  ];

  it.each(checks.map((c, i) => [i, c] as const))('requirement %i', async (_i, requirement) => {
    const compiled = compileRequirements([requirement], { baseDir: __dirname });
    const input = { evidence, artifacts: [{ digest: { sha256: artifact } }] };
    const err: unknown = await verifyEvidence(compiled, input, { repository: 'acme/web', ref: 'refs/heads/main' }).catch((e: unknown) => e);
    expect(isStagegateError(err, 'PROVENANCE_FAILED')).toBe(true);
    const wire = JSON.stringify((err as StagegateError).toJSON()) + (err as Error).message + String((err as Error).stack);
    expect(wire).not.toContain(MARK);
    const report = JSON.stringify(await explainEvidence(compiled, input, { repository: 'acme/web', ref: 'refs/heads/main' }));
    expect(report).not.toContain(MARK);
    // The only evidence-derived values are hex digests.
    expect(wire).toMatch(/"sha256":"[0-9a-f]{64}"/);
  });
});

describe('toEvidenceItems (for --evidence FILE)', () => {
  const dir = join(__dirname, '..', 'fixtures', 'sigstore-conformance', 'happy-path-v0.3');
  const bundleText = readFileSync(join(dir, 'bundle.sigstore.json'), 'utf8');

  it('reads a bundle, a DSSE envelope, a typed item, and JSON Lines', () => {
    const key = makeKey('ed25519');
    const envelope = signEnvelope({ a: 1 }, key);
    expect(toEvidenceItems(bundleText)).toEqual([{ type: 'sigstore', bundle: JSON.parse(bundleText) }]);
    expect(toEvidenceItems(JSON.stringify(envelope))).toEqual([{ type: 'dsse', envelope }]);
    expect(toEvidenceItems(JSON.stringify({ type: 'dsse', envelope }))).toEqual([{ type: 'dsse', envelope }]);
    const lines = `${JSON.stringify(JSON.parse(bundleText))}\n\n${JSON.stringify(envelope)}\n`;
    expect(toEvidenceItems(lines).map((i) => (i as { type: string }).type)).toEqual(['sigstore', 'dsse']);
  });

  it('verifyEvidence accepts an untyped bundle, as `stagegate run --evidence` sends it', async () => {
    const identity = 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
    const compiled = compileRequirements([{ sigstore: { identity, issuer: 'https://token.actions.githubusercontent.com' } }], { baseDir: dir });
    const verified = await verifyEvidence(compiled, { evidence: [JSON.parse(bundleText)] }, {});
    expect(verified.satisfied[0]!.facts.signer).toMatchObject({ kind: 'certificate', identity });
  });

  it('refuses other documents with a coded error that quotes nothing', () => {
    const err = caught(() => toEvidenceItems('{"secret":"Zq7SECRETMARK"}'));
    expect(err.code).toBe('INVALID_REQUEST');
    expect(JSON.stringify(err.toJSON())).not.toContain('Zq7SECRETMARK');
    expect(caught(() => toEvidenceItems('{"a":1}\nZq7SECRETMARK')).message).not.toContain('Zq7SECRETMARK');
  });
});

function corruptCertificateBundle(): Record<string, unknown> {
  const dir = join(__dirname, '..', 'fixtures', 'sigstore-conformance', 'happy-path-v0.3');
  const bundle = JSON.parse(readFileSync(join(dir, 'bundle.sigstore.json'), 'utf8')) as { verificationMaterial: { certificate: { rawBytes: string } } };
  bundle.verificationMaterial.certificate.rawBytes = Buffer.from('not a certificate').toString('base64');
  return bundle as unknown as Record<string, unknown>;
}

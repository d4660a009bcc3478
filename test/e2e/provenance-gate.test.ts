/**
 * Provenance-gated issuance through the real broker over HTTP, through `stagegate run
 * --evidence`, and the `stagegate verify` dry run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, buildClaims, call, startTestBroker, type TestBroker } from '../harness/broker';
import { GITHUB_BUILD_TYPE, GITHUB_HOSTED_BUILDER, makeKey, signEnvelope, slsaV1Statement, type TestKey } from '../provenance/make-attestation';

const CONFORMANCE = join(__dirname, '..', 'fixtures', 'sigstore-conformance');
const BEACON = 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const ARTIFACT = 'a'.repeat(64);

let tb: TestBroker;
let key: TestKey;
let dir: string;

function envelopeFor(overrides: Partial<Parameters<typeof slsaV1Statement>[0]> = {}, k: TestKey = key) {
  return signEnvelope(
    slsaV1Statement({
      subjects: [{ name: 'web.tgz', sha256: ARTIFACT }],
      builderId: GITHUB_HOSTED_BUILDER,
      buildType: GITHUB_BUILD_TYPE,
      repo: 'https://github.com/acme/web',
      ref: 'refs/heads/main',
      commit: COMMIT,
      ...overrides,
    }),
    k,
  );
}

beforeAll(async () => {
  key = makeKey('ecdsa-p256');
  dir = mkdtempSync(join(tmpdir(), 'sg-prov-'));
  writeFileSync(join(dir, 'release.pub'), key.publicPem);
  tb = await startTestBroker({
    dir,
    configure: (c) => {
      c.rules[0].stages.release = {
        grants: [{ name: 'deployer', provider: 'dev', kind: 'aws' }],
        requires: [
          {
            dsse: { keyFiles: ['release.pub'] },
            slsa: { builderIds: [GITHUB_HOSTED_BUILDER], sourceRepo: 'https://github.com/{repository}', sourceRef: '{ref}', sourceDigest: '{sha}' },
            requireArtifact: true,
          },
        ],
      };
      c.rules[0].stages.conformance = {
        once: false,
        grants: [{ name: 'deployer', provider: 'dev', kind: 'aws' }],
        requires: [{ sigstore: { identity: BEACON, issuer: 'https://token.actions.githubusercontent.com' } }],
      };
    },
  });
});
afterAll(async () => {
  await tb.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Run the CLI without blocking this process (the broker and issuer answer from it). */
function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

const open = async (body: Record<string, unknown>, claims = buildClaims({ sha: COMMIT })) =>
  call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body });

describe('a stage that requires provenance', () => {
  it('gets nothing without evidence, and the denial names the requirement and the check', async () => {
    const r = await open({ stage: 'release', artifacts: [{ digest: { sha256: ARTIFACT } }] });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('PROVENANCE_FAILED');
    expect(r.body.error.details.failures[0]).toMatchObject({ requirement: 'rules[0].stages.release.requires[0]', check: 'no-evidence' });
    const denied = (await tb.broker.store.readAudit(0, 1e6)).filter((e) => e.type === 'stage.denied' && e.data.code === 'PROVENANCE_FAILED');
    expect(denied.length).toBeGreaterThan(0);
  });

  it('opens with a valid signed SLSA attestation for this commit and artifact', async () => {
    const r = await open({ stage: 'release', evidence: [{ type: 'dsse', envelope: envelopeFor() }], artifacts: [{ digest: { sha256: ARTIFACT } }] });
    expect(r.status).toBe(201);
    expect(r.body.credentials).toHaveLength(1);
    await call(tb.url, 'DELETE', `/v1/stages/${r.body.stageId}`, { token: r.body.stageToken });
  });

  it.each<[string, () => Record<string, unknown>, Record<string, unknown>, string]>([
    ['another commit than the token\'s sha', () => ({ evidence: [envelopeFor({ commit: 'f'.repeat(40) })] }), {}, 'source-digest'],
    ['a self-hosted builder', () => ({ evidence: [envelopeFor({ builderId: 'https://github.com/acme/self-hosted' })] }), {}, 'builder'],
    ['another repository', () => ({ evidence: [envelopeFor({ repo: 'https://github.com/evil/web' })] }), {}, 'source-repo'],
    ['a key the policy does not trust', () => ({ evidence: [envelopeFor({}, makeKey('ed25519'))] }), {}, 'signature'],
    ['another artifact', () => ({ evidence: [envelopeFor()], artifacts: [{ digest: { sha256: 'b'.repeat(64) } }] }), {}, 'digest-mismatch'],
    [
      'a tampered payload',
      () => {
        const env = envelopeFor();
        const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString());
        statement.subject[0].digest.sha256 = 'c'.repeat(64);
        return { evidence: [{ ...env, payload: Buffer.from(JSON.stringify(statement)).toString('base64') }], artifacts: [{ digest: { sha256: 'c'.repeat(64) } }] };
      },
      {},
      'signature',
    ],
    ['a token from another build of the same repo at another commit', () => ({ evidence: [envelopeFor()] }), { sha: 'e'.repeat(40) }, 'source-digest'],
  ])('is denied for %s, echoing nothing of the evidence but digests', async (_name, make, claimOverrides, check) => {
    const body: Record<string, unknown> = { stage: 'release', artifacts: [{ digest: { sha256: ARTIFACT } }], ...make() };
    const r = await open(body, buildClaims({ sha: COMMIT, ...claimOverrides }));
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('PROVENANCE_FAILED');
    expect(r.body.error.details.failures.map((f: { check: string }) => f.check)).toContain(check);
    const env = (body.evidence as Array<{ payload?: string; envelope?: { payload: string } }>)[0]!;
    const payload = env.payload ?? env.envelope!.payload;
    expect(r.text).not.toContain(payload.slice(0, 32));
  });

  it('verifies real Sigstore bundles offline at the broker (sigstore-conformance)', async () => {
    const bundle = (name: string) => JSON.parse(readFileSync(join(CONFORMANCE, name, 'bundle.sigstore.json'), 'utf8'));
    const ok = await open({ stage: 'conformance', evidence: [bundle('happy-path-intoto-in-dsse-v3')] });
    expect(ok.status).toBe(201);
    await call(tb.url, 'DELETE', `/v1/stages/${ok.body.stageId}`, { token: ok.body.stageToken });
    const bad = await open({ stage: 'conformance', evidence: [bundle('dsse-invalid-sig_fail')] });
    expect(bad.status).toBe(403);
    expect(bad.body.error.code).toBe('PROVENANCE_FAILED');
  });
});

describe('the CLI', () => {
  it('stagegate run --evidence FILE --artifact sends the attestation and runs the command', async () => {
    const evidenceFile = join(dir, 'att.intoto.jsonl');
    writeFileSync(evidenceFile, `${JSON.stringify(envelopeFor())}\n`);
    const tokenFile = join(dir, 'id.jwt');
    writeFileSync(tokenFile, await tb.mintToken(buildClaims({ sha: COMMIT })));
    const env = { ...process.env, STAGEGATE_BROKER_URL: tb.url, STAGEGATE_IDENTITY_TOKEN_FILE: tokenFile };
    const child = spawn(process.execPath, [CLI, 'run', '--stage', 'release', '--evidence', evidenceFile, '--artifact', `web.tgz=sha256:${ARTIFACT}`, '--', process.execPath, '-e', 'process.exit(7)'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(7);
    expect(err).toMatch(/revoked/i);
    // without evidence the same stage is refused and the command never runs
    writeFileSync(tokenFile, await tb.mintToken(buildClaims({ sha: COMMIT })));
    const refused = await runCli(['run', '--stage', 'release', '--artifact', `sha256:${ARTIFACT}`, '--', process.execPath, '-e', 'console.log("RAN")'], env);
    expect(refused.status).not.toBe(0);
    expect(refused.stdout).not.toContain('RAN');
    expect(refused.stderr).toContain('PROVENANCE_FAILED');
  });

  it('stagegate verify explains the decision without issuing anything', async () => {
    const cfgFile = join(dir, 'verify.yaml');
    writeFileSync(cfgFile, stringify({
      issuers: [{ name: 'ci', issuer: tb.issuer.issuer, jwksUri: tb.issuer.jwksUri, audience: 'stagegate', buildKey: '{repository}/{run_id}/{run_attempt}' }],
      providers: { dev: { type: 'dev' } },
      rules: [{ name: 'web-main', issuer: 'ci', claims: { repository: 'acme/web' }, stages: { release: { grants: [{ name: 'd', provider: 'dev' }], requires: [{ dsse: { keyFiles: ['release.pub'] }, slsa: { builderIds: [GITHUB_HOSTED_BUILDER], sourceDigest: '{sha}' } }] } } }],
    }));
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    writeFileSync(good, JSON.stringify(envelopeFor()));
    writeFileSync(bad, JSON.stringify(envelopeFor({ builderId: 'https://example.com/other' })));
    const tokenFile = join(dir, 'verify.jwt');
    writeFileSync(tokenFile, await tb.mintToken(buildClaims({ sha: COMMIT })));
    const auditBefore = (await tb.broker.store.readAudit(0, 1e6)).length;
    const yes = await runCli(['verify', '--config', cfgFile, '--stage', 'release', '--identity-token-file', tokenFile, '--evidence', good]);
    expect(yes.stdout).toContain('ALLOWED');
    expect(yes.status).toBe(0);
    const no = await runCli(['verify', '--config', cfgFile, '--stage', 'release', '--identity-token-file', tokenFile, '--evidence', bad, '--json']);
    expect(no.status).toBe(1);
    const out = JSON.parse(no.stdout);
    expect(out).toMatchObject({ allowed: false, rule: 'web-main', denial: { code: 'PROVENANCE_FAILED' } });
    expect(out.denial.details.failures[0].check).toBe('builder');
    const claimsFile = join(dir, 'claims.json');
    writeFileSync(claimsFile, JSON.stringify({ iss: tb.issuer.issuer, repository: 'acme/other', run_id: '1', run_attempt: '1' }));
    const policy = await runCli(['verify', '--config', cfgFile, '--stage', 'release', '--claims', claimsFile]);
    expect(policy.status).toBe(1);
    expect(policy.stdout).toContain('NOT verified');
    expect(policy.stdout).toContain('POLICY_DENIED');
    expect((await runCli(['verify', '--stage', 'release'])).status).toBe(2);
    // nothing happened at the broker
    expect((await tb.broker.store.readAudit(0, 1e6)).length).toBe(auditBefore);
  });
});

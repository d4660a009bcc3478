/**
 * The aws-sts provider end to end against the wire-faithful STS/IAM fake, with the real
 * AWS SDK clients on both sides: the provider's, and the stage's (calling AWS with the
 * credentials it was issued).
 */
import { Writable } from 'node:stream';
import { AssumeRoleCommand, GetAccessKeyInfoCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import pino from 'pino';
import { StagegateError } from '../../sdk/errors';
import type { GrantSpec, Handle, IssuedCredential, Provider, StageContext } from '../../providers/provider';
import {
  awsStsConfigSchema,
  awsStsGrantSchema,
  awsStsProviderFactory,
  createAwsStsProvider,
  type AwsStsConfigInput,
  type AwsStsGrant,
  type AwsStsGrantInput,
} from '../../providers/aws-sts';
import { startFakeAws, type FakeAws } from '../fakes/aws-sts-iam';

const BROKER = { accessKeyId: 'AKIASTAGEGATEBROKER1', secretAccessKey: 'broker-secret-0123456789abcdefghijklmnopqrs' };
const DENY_POLICY = 'stagegate-revocations';

let fake: FakeAws;
let roleArn: string;
let logLines: string[];
/** Everything that must never contain secret material: errors, logs, handles. */
let observed: string[];
let secrets: string[];
let provider: Provider<AwsStsGrant>;

function makeProvider(patch: Partial<AwsStsConfigInput> = {}, credentials: typeof BROKER = BROKER): Provider<AwsStsGrant> {
  const config = awsStsConfigSchema.parse({
    type: 'aws-sts',
    region: 'us-east-1',
    endpoint: { sts: fake.url, iam: fake.url },
    roleArn,
    maxAttempts: 1,
    ...patch,
  });
  const stream = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return createAwsStsProvider('aws', config, { logger, now: () => fake.now() }, { credentials });
}

let stageCounter = 0;
function stage(patch: Partial<StageContext> = {}): StageContext {
  stageCounter += 1;
  const now = fake.now().getTime();
  return {
    stageId: `st-${stageCounter}-${Math.random().toString(36).slice(2, 10)}`,
    build: 'acme/web/123/1',
    stage: 'deploy',
    rule: 'deploy-main',
    issuer: 'github',
    claims: { repository: 'acme/web', ref: 'refs/heads/main' },
    expiresAt: new Date(now + 15 * 60_000),
    maxExpiresAt: new Date(now + 60 * 60_000),
    ...patch,
  };
}

function grant(params: AwsStsGrantInput = {}): GrantSpec<AwsStsGrant> {
  return { name: 'aws-deploy', provider: 'aws', params: awsStsGrantSchema.parse(params) };
}

function stageClient(cred: IssuedCredential): STSClient {
  const { accessKeyId, secretAccessKey, sessionToken } = cred.values as { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  secrets.push(secretAccessKey, sessionToken);
  return new STSClient({ endpoint: fake.url, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey, sessionToken }, maxAttempts: 1 });
}

/** Can the stage still act with its credentials? (GetAccessKeyInfo is policy-checked; GetCallerIdentity is not, on AWS.) */
async function credentialWorks(cred: IssuedCredential): Promise<boolean | string> {
  try {
    await stageClient(cred).send(new GetAccessKeyInfoCommand({ AccessKeyId: cred.values.accessKeyId! }));
    return true;
  } catch (err) {
    return (err as Error).name;
  }
}

async function issue(p: Provider<AwsStsGrant>, ctx: StageContext, g = grant()): Promise<{ intent: Handle; cred: IssuedCredential }> {
  const intent = p.prepare(g, ctx);
  observed.push(JSON.stringify(intent));
  const cred = await p.issue(g, ctx, intent);
  observed.push(JSON.stringify(cred.handle), JSON.stringify(cred.meta));
  secrets.push(cred.values.secretAccessKey!, cred.values.sessionToken!);
  return { intent, cred };
}

async function coded(p: Promise<unknown>): Promise<StagegateError> {
  try {
    await p;
  } catch (err) {
    observed.push(String(err), JSON.stringify(err), (err as Error).stack ?? '', JSON.stringify((err as StagegateError).details ?? {}));
    if (err instanceof StagegateError) return err;
    throw err;
  }
  throw new Error('expected a coded error');
}

beforeEach(async () => {
  fake = await startFakeAws();
  fake.addAccessKey(BROKER.accessKeyId, BROKER.secretAccessKey);
  roleArn = fake.createRole('deployer', { maxSessionDuration: 3600 });
  logLines = [];
  observed = [];
  secrets = [];
  provider = makeProvider();
});

afterEach(async () => {
  await provider.close?.();
  // The core security property, checked after every test: no secret anywhere we can see.
  const haystack = [...observed, ...logLines].join('\n');
  for (const s of secrets) expect(haystack.includes(s)).toBe(false);
  expect(haystack).not.toContain(BROKER.secretAccessKey);
  await fake.close();
});

describe('aws-sts provider: issue and revoke', () => {
  it('issues working credentials, and a revoke makes them useless (also through role chaining)', async () => {
    const second = fake.createRole('second');
    const ctx = stage();
    const { intent, cred } = await issue(provider, ctx);
    expect(cred).toMatchObject({ kind: 'aws', revocation: 'deny-policy', meta: { region: 'us-east-1' } });
    expect(Object.keys(cred.values).sort()).toEqual(['accessKeyId', 'secretAccessKey', 'sessionToken']);
    expect(await credentialWorks(cred)).toBe(true);
    const who = await stageClient(cred).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::123456789012:assumed-role/deployer/deploy.${ctx.stageId}`);

    const session = fake.sessions()[0]!;
    expect(session.sourceIdentity).toBe(`sg-${ctx.stageId}`);
    expect(session.tags).toEqual(
      expect.arrayContaining([
        { Key: 'stagegate:build', Value: 'acme/web/123/1' },
        { Key: 'stagegate:stage', Value: 'deploy' },
        { Key: 'stagegate:rule', Value: 'deploy-main' },
        { Key: 'stagegate:stage-id', Value: ctx.stageId },
      ]),
    );
    expect(session.transitiveTagKeys).toEqual(['stagegate:build', 'stagegate:stage', 'stagegate:rule', 'stagegate:stage-id']);

    const result = await provider.revoke(intent, cred.handle);
    expect(result.method).toBe('deny-policy');
    expect(result.effectiveAt.getTime()).toBeGreaterThanOrEqual(fake.now().getTime());
    expect(await credentialWorks(cred)).toBe('AccessDenied');
    await expect(stageClient(cred).send(new AssumeRoleCommand({ RoleArn: second, RoleSessionName: 'escape' }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
  });

  it('revokes with the intent alone (crash between mint and record)', async () => {
    const ctx = stage();
    const { intent, cred } = await issue(provider, ctx);
    // A fresh provider instance, as after a broker restart: only the stored intent survives.
    const restarted = makeProvider();
    try {
      await restarted.revoke(intent, undefined);
    } finally {
      await restarted.close?.();
    }
    expect(await credentialWorks(cred)).toBe('AccessDenied');
  });

  it('prepares a deterministic intent without secrets, unique per stage', () => {
    const ctx = stage();
    const a = provider.prepare(grant(), ctx);
    const b = provider.prepare(grant(), ctx);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ roleArn, sourceIdentity: `sg-${ctx.stageId}`, sessionName: `deploy.${ctx.stageId}` });
    const other = provider.prepare(grant(), { ...ctx, stageId: `${ctx.stageId}x` });
    expect(other.sourceIdentity).not.toBe(a.sourceIdentity);
  });

  it('is idempotent: a second revoke writes nothing new', async () => {
    const { intent, cred } = await issue(provider, stage());
    await provider.revoke(intent, cred.handle);
    const puts = fake.callCount('PutRolePolicy');
    await provider.revoke(intent, cred.handle);
    expect(fake.callCount('PutRolePolicy')).toBe(puts);
    // Intent only (its bound is later than the real expiry): may move the deny later, never drops it.
    await provider.revoke(intent, undefined);
    await provider.revoke(intent, undefined);
    expect(fake.callCount('PutRolePolicy')).toBeLessThanOrEqual(puts + 1);
    expect(await credentialWorks(cred)).toBe('AccessDenied');
  });

  it('leaves other stages of the same role working', async () => {
    const a = await issue(provider, stage());
    const b = await issue(provider, stage());
    await provider.revoke(a.intent, a.cred.handle);
    expect(await credentialWorks(a.cred)).toBe('AccessDenied');
    expect(await credentialWorks(b.cred)).toBe(true);
  });

  it('asks for the stage TTL clamped to [900, role max]', async () => {
    const short = await issue(provider, stage({ expiresAt: new Date(fake.now().getTime() + 60_000) }));
    const long = await issue(provider, stage({ expiresAt: new Date(fake.now().getTime() + 3 * 3600_000) }));
    const mid = await issue(provider, stage({ expiresAt: new Date(fake.now().getTime() + 1800_000) }));
    const life = (c: IssuedCredential) => {
      const s = fake.sessions().find((x) => x.accessKeyId === c.values.accessKeyId)!;
      return (s.expiresAt.getTime() - s.issuedAt.getTime()) / 1000;
    };
    expect(life(short.cred)).toBe(900);
    expect(life(long.cred)).toBe(3600);
    expect(life(mid.cred)).toBeGreaterThanOrEqual(1799);
    expect(life(mid.cred)).toBeLessThanOrEqual(1800);
  });

  it('does not write a deny for credentials that have already expired', async () => {
    const { intent, cred } = await issue(provider, stage());
    fake.advanceClock(3 * 3600_000);
    expect(await credentialWorks(cred)).toBe('ExpiredToken');
    const result = await provider.revoke(intent, cred.handle);
    expect(result.effectiveAt).toEqual(cred.expiresAt);
    expect(fake.callCount('PutRolePolicy')).toBe(0);
  });

  it('passes the session policy and narrows the credentials with it', async () => {
    const g = grant({ sessionPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] } });
    const { cred } = await issue(provider, stage(), g);
    expect(fake.sessions()[0]!.sessionPolicy).toBe(g.params.sessionPolicy);
    expect(await credentialWorks(cred)).toBe('AccessDenied');
  });
});

describe('aws-sts provider: parameter limits', () => {
  it('issues for very long, unicode stage and build names and claims with bad characters', async () => {
    const p = makeProvider({ claimTags: { repository: 'repo', actor: 'actor', weird: 'weird', list: 'list', obj: 'obj' } });
    try {
      const ctx = stage({
        stageId: 'a'.repeat(40),
        stage: 'デプロイ 本番/環境 '.repeat(20),
        build: `acme/${'ü'.repeat(300)}/#123;rm -rf /`,
        rule: 'rule with spaces & <xml>',
        claims: { repository: 'acme/web', actor: 'x'.repeat(65), weird: 'a;b|c\nd"e\'f$(g)', list: ['a', 'b', 3], obj: { nested: true } },
      });
      const { cred } = await issue(p, ctx);
      expect(await credentialWorks(cred)).toBe(true);
      const s = fake.sessions()[0]!;
      expect(s.sessionName.length).toBeLessThanOrEqual(64);
      expect(s.sessionName).toMatch(/^[\w+=,.@-]{2,64}$/);
      expect(s.sessionName.endsWith(`.${'a'.repeat(40)}`)).toBe(true);
      expect(s.sourceIdentity).toBe(`sg-${'a'.repeat(40)}`);
      const tag = (k: string) => s.tags.find((t) => t.Key === k)?.Value;
      expect(tag('actor')).toBe('x'.repeat(65));
      expect(tag('weird')).toBe('a_b_c_d_e_f__g_');
      expect(tag('list')).toBe('a b 3');
      expect(tag('obj')).toBeUndefined();
      expect(tag('stagegate:build')!.length).toBeLessThanOrEqual(256);
      expect(tag('stagegate:build')!.startsWith('acme/ü')).toBe(true);
      expect(tag('stagegate:rule')).toBe('rule with spaces _ _xml_');
    } finally {
      await p.close?.();
    }
  });

  it('keeps stages whose names sanitise alike apart', () => {
    const base = stage();
    const a = provider.prepare(grant(), { ...base, stage: 'déploy', stageId: 'x1' });
    const b = provider.prepare(grant(), { ...base, stage: 'dèploy', stageId: 'x1' });
    expect(a.sessionName).not.toBe(b.sessionName);
  });

  it('sanitises a stage id outside the documented charset into a valid, distinct SourceIdentity', async () => {
    const ctx = stage({ stageId: 'ÜNICODE stage id that is far too long for STS to take as it is' });
    const intent = provider.prepare(grant(), ctx);
    expect(String(intent.sourceIdentity)).toMatch(/^[\w+=,.@-]{2,64}$/);
    const { cred } = await issue(provider, ctx);
    expect(await credentialWorks(cred)).toBe(true);
  });

  it('reports a bad grant or config with the path of every bad field', () => {
    const g = awsStsGrantSchema.safeParse({ roleArn: 'nope', policyArns: Array(11).fill('arn:aws:iam::aws:policy/ReadOnlyAccess'), tags: { 'stagegate:build': 'spoof' } });
    expect(g.success).toBe(false);
    expect(g.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['policyArns', 'roleArn', 'tags.stagegate:build'].sort());
    const c = awsStsProviderFactory.configSchema.safeParse({ type: 'aws-sts', region: 'mars', maxSessionSeconds: 60, claimTags: { a: 'aws:x' }, secretAccessKey: 'no' });
    expect(c.success).toBe(false);
    const paths = c.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['region', 'maxSessionSeconds', 'claimTags.a', '']));
    const longPolicy = awsStsGrantSchema.safeParse({ sessionPolicy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: 'x'.repeat(2100) }] }) });
    expect(longPolicy.error!.issues[0]!.path).toEqual(['sessionPolicy']);
  });
});

describe('aws-sts provider: failures are coded and carry no secrets', () => {
  it('maps an STS outage at issue to PROVIDER_UNAVAILABLE', async () => {
    fake.setOutage(true);
    const ctx = stage();
    const err = await coded(provider.issue(grant(), ctx, provider.prepare(grant(), ctx)));
    expect(err.code).toBe('PROVIDER_UNAVAILABLE');
    expect(err.message).toBe('aws sts:AssumeRole failed: ServiceUnavailable');
    expect(err.cause).toBeUndefined();
  });

  it('maps throttling to PROVIDER_UNAVAILABLE and a refusal to PROVIDER_REJECTED without ARNs or account ids', async () => {
    fake.setOutage({ status: 400, code: 'Throttling' });
    const ctx = stage();
    expect((await coded(provider.issue(grant(), ctx, provider.prepare(grant(), ctx)))).code).toBe('PROVIDER_UNAVAILABLE');
    fake.setOutage(false);
    const g = grant({ roleArn: 'arn:aws:iam::123456789012:role/missing' });
    const err = await coded(provider.issue(g, ctx, provider.prepare(g, ctx)));
    expect(err.code).toBe('PROVIDER_REJECTED');
    expect(err.details).toMatchObject({ awsCode: 'AccessDenied', httpStatus: 403 });
    const everything = `${err.message} ${JSON.stringify(err)} ${logLines.join('')}`;
    expect(everything).not.toContain('123456789012');
    expect(everything).not.toContain('arn:aws');
  });

  it('maps a role that does not trust sts:SetSourceIdentity to PROVIDER_REJECTED', async () => {
    const strict = fake.createRole('strict', { trustAllowsSourceIdentity: false });
    const g = grant({ roleArn: strict });
    const ctx = stage();
    expect((await coded(provider.issue(g, ctx, provider.prepare(g, ctx)))).code).toBe('PROVIDER_REJECTED');
  });

  it('fails a revoke during an IAM outage with a coded error, and the retry after it succeeds', async () => {
    const { intent, cred } = await issue(provider, stage());
    fake.setOutage({ services: ['iam'] });
    const err = await coded(provider.revoke(intent, cred.handle));
    expect(err.code).toBe('PROVIDER_UNAVAILABLE');
    expect(err.details).toMatchObject({ operation: 'iam:GetRolePolicy', awsCode: 'ServiceUnavailable' });
    expect(await credentialWorks(cred)).toBe(true);
    fake.setOutage({ services: ['iam'], actions: ['PutRolePolicy'], status: 400, code: 'Throttling' });
    expect((await coded(provider.revoke(intent, cred.handle))).details).toMatchObject({ operation: 'iam:PutRolePolicy' });
    fake.setOutage(false);
    await provider.revoke(intent, cred.handle);
    expect(await credentialWorks(cred)).toBe('AccessDenied');
  });

  it('reports readiness with the broker credentials, coded when AWS is down or the key is wrong', async () => {
    await provider.ready!();
    fake.setOutage(true);
    expect((await coded(provider.ready!())).code).toBe('PROVIDER_UNAVAILABLE');
    fake.setOutage(false);
    const wrong = makeProvider({}, { ...BROKER, secretAccessKey: 'wrong-secret-value-0000000000000000000000' });
    try {
      const err = await coded(wrong.ready!());
      expect(err.code).toBe('PROVIDER_REJECTED');
      expect(err.details).toMatchObject({ awsCode: 'SignatureDoesNotMatch' });
    } finally {
      await wrong.close?.();
    }
  });

  it('keeps statements it did not write in its policy (an operator\'s manual deny survives)', async () => {
    const manual = { Sid: 'ManualBreakGlass', Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringEquals: { 'aws:SourceIdentity': 'sg-manual' } } };
    await putRaw(DENY_POLICY, JSON.stringify({ Version: '2012-10-17', Statement: [manual] }));
    const { intent, cred } = await issue(provider, stage());
    await provider.revoke(intent, cred.handle);
    fake.advanceClock(5 * 3600_000);
    await provider.maintain!(fake.now());
    expect(JSON.parse(fake.rolePolicies('deployer')[DENY_POLICY]!).Statement).toEqual([manual]);
  });

  it('maps an aggregate-size refusal by IAM (other inline policies on the role) to a coded error', async () => {
    await putRaw('big-other-policy', bigPolicy(10_200));
    const { intent, cred } = await issue(provider, stage());
    const err = await coded(provider.revoke(intent, cred.handle));
    expect(err.code).toBe('PROVIDER_REJECTED');
    expect(err.details).toMatchObject({ awsCode: 'LimitExceededException' });
  });
});

describe('aws-sts provider: deny-list budget and garbage collection', () => {
  it('keeps every deny of 200 concurrent revocations on one role, never above 10,240 characters', async () => {
    const issued = await Promise.all(
      Array.from({ length: 200 }, (_, i) => issue(provider, stage({ stageId: `${i.toString().padStart(4, '0')}-4b8e-9c1d-2f3a4b5c6d7e-aaaa` }))),
    );
    const results = await Promise.all(issued.map(({ intent, cred }) => provider.revoke(intent, cred.handle)));
    expect(results.every((r) => r.method === 'deny-policy')).toBe(true);
    expect(fake.maxInlinePolicyChars('deployer')).toBeLessThanOrEqual(10_240);
    // Coalesced: far fewer IAM writes than revocations.
    expect(fake.callCount('PutRolePolicy')).toBeLessThan(20);
    const verdicts = await Promise.all(issued.map(({ cred }) => credentialWorks(cred)));
    expect(verdicts.filter((v) => v !== 'AccessDenied')).toEqual([]);
  });

  it('fails a revocation that does not fit with a coded error, without dropping a live deny', async () => {
    const small = makeProvider({ denyPolicyMaxChars: 1024 });
    try {
      const issued = await Promise.all(Array.from({ length: 80 }, () => issue(small, stage())));
      const outcomes = await Promise.allSettled(issued.map(({ intent, cred }) => small.revoke(intent, cred.handle)));
      const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
      const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(ok).toBeGreaterThan(5);
      expect(failed.length).toBeGreaterThan(0);
      for (const f of failed) {
        expect(f.reason).toBeInstanceOf(StagegateError);
        expect(f.reason).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', details: { reason: 'deny-list-full' } });
        observed.push(String(f.reason), JSON.stringify(f.reason));
      }
      expect(fake.maxInlinePolicyChars('deployer')).toBeLessThanOrEqual(1024);
      for (let i = 0; i < issued.length; i++) {
        expect(await credentialWorks(issued[i]!.cred)).toBe(outcomes[i]!.status === 'fulfilled' ? 'AccessDenied' : true);
      }
    } finally {
      await small.close?.();
    }
  });

  it('garbage-collects denies once the denied credentials expired, keeping live ones', async () => {
    const hour = () => stage({ expiresAt: new Date(fake.now().getTime() + 3600_000) });
    const first = await issue(provider, hour());
    await provider.revoke(first.intent, first.cred.handle);
    await provider.maintain!(fake.now());
    expect(fake.rolePolicies('deployer')[DENY_POLICY]).toContain(String(first.intent.sourceIdentity));

    fake.advanceClock(30 * 60_000);
    const second = await issue(provider, hour());
    await provider.revoke(second.intent, second.cred.handle);
    const doc = fake.rolePolicies('deployer')[DENY_POLICY]!;
    expect(doc).toContain(String(first.intent.sourceIdentity));
    expect(doc).toContain(String(second.intent.sourceIdentity));

    // t = 85 min: the first expired at 60 (+ 6 min margins, rounded up to a 15-min bucket),
    // the second lives until 90.
    fake.advanceClock(55 * 60_000);
    expect(await credentialWorks(first.cred)).toBe('ExpiredToken');
    await provider.maintain!(fake.now());
    const after = fake.rolePolicies('deployer')[DENY_POLICY]!;
    expect(after).not.toContain(String(first.intent.sourceIdentity));
    expect(after).toContain(String(second.intent.sourceIdentity));
    expect(await credentialWorks(second.cred)).toBe('AccessDenied');

    fake.advanceClock(3 * 3600_000);
    await provider.maintain!(fake.now());
    expect(fake.rolePolicies('deployer')[DENY_POLICY]).toBeUndefined();
    expect(fake.callCount('DeleteRolePolicy')).toBe(1);
  });

  it('makes room by collecting garbage during a revoke once the old denies expired', async () => {
    const small = makeProvider({ denyPolicyMaxChars: 1024 });
    try {
      const batch1 = await Promise.all(Array.from({ length: 80 }, () => issue(small, stage())));
      const r1 = await Promise.allSettled(batch1.map(({ intent, cred }) => small.revoke(intent, cred.handle)));
      expect(r1.some((r) => r.status === 'rejected')).toBe(true);
      fake.advanceClock(2 * 3600_000);
      const batch2 = await Promise.all(Array.from({ length: 5 }, () => issue(small, stage())));
      await Promise.all(batch2.map(({ intent, cred }) => small.revoke(intent, cred.handle)));
      for (const { cred } of batch2) expect(await credentialWorks(cred)).toBe('AccessDenied');
      const doc = fake.rolePolicies('deployer')[DENY_POLICY]!;
      for (const { intent } of batch1) expect(doc).not.toContain(String(intent.sourceIdentity));
    } finally {
      await small.close?.();
    }
  });
});

async function putRaw(name: string, document: string): Promise<void> {
  const { IAMClient, PutRolePolicyCommand } = await import('@aws-sdk/client-iam');
  const iam = new IAMClient({ endpoint: fake.url, region: 'us-east-1', credentials: BROKER, maxAttempts: 1 });
  await iam.send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: name, PolicyDocument: document }));
}

function bigPolicy(chars: number): string {
  const shell = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '' }] });
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'r'.repeat(chars - shell.length) }] });
}

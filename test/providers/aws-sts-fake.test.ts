/**
 * The AWS fake must be able to fail: real SDK clients against it, proving it checks
 * signatures, limits and policies the way AWS does.
 */
import { randomBytes } from 'node:crypto';
import {
  AssumeRoleCommand,
  GetAccessKeyInfoCommand,
  GetCallerIdentityCommand,
  STSClient,
  type AssumeRoleCommandInput,
} from '@aws-sdk/client-sts';
import { GetRolePolicyCommand, IAMClient, PutRolePolicyCommand, DeleteRolePolicyCommand, ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { startFakeAws, type FakeAws } from '../fakes/aws-sts-iam';

const BROKER = { accessKeyId: 'AKIASTAGEGATETEST001', secretAccessKey: 'broker-secret-key-0123456789abcdefghijklmn' };

let fake: FakeAws;
let roleArn: string;

const sts = (credentials = BROKER as { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
  new STSClient({ endpoint: fake.url, region: 'us-east-1', credentials, maxAttempts: 1 });
const iam = (credentials = BROKER as { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
  new IAMClient({ endpoint: fake.url, region: 'us-east-1', credentials, maxAttempts: 1 });

const base = (): AssumeRoleCommandInput => ({ RoleArn: roleArn, RoleSessionName: 'deploy.s1', SourceIdentity: 'sg-s1', DurationSeconds: 900 });

async function errorOf(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('expected the call to fail');
}

beforeEach(async () => {
  fake = await startFakeAws();
  fake.addAccessKey(BROKER.accessKeyId, BROKER.secretAccessKey);
  roleArn = fake.createRole('deployer', { maxSessionDuration: 7200 });
});
afterEach(async () => {
  await fake.close();
});

describe('fake STS/IAM: authentication', () => {
  it('accepts a correctly signed call from a known key', async () => {
    const out = await sts().send(new GetCallerIdentityCommand({}));
    expect(out.Account).toBe('123456789012');
  });

  it('rejects a wrong secret with SignatureDoesNotMatch', async () => {
    const e = await errorOf(sts({ ...BROKER, secretAccessKey: 'wrong' }).send(new GetCallerIdentityCommand({})));
    expect(e).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
  });

  it('rejects an unknown key with InvalidClientTokenId', async () => {
    const e = await errorOf(sts({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' }).send(new GetCallerIdentityCommand({})));
    expect(e).toMatchObject({ name: 'InvalidClientTokenId', status: 403 });
  });

  it('rejects an unsigned request', async () => {
    const res = await fetch(fake.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=GetCallerIdentity&Version=2011-06-15',
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Code>MissingAuthenticationToken</Code>');
  });

  it('rejects a session key presented without its session token, or with another one', async () => {
    const out = await sts().send(new AssumeRoleCommand(base()));
    const c = out.Credentials!;
    const noToken = await errorOf(sts({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey! }).send(new GetCallerIdentityCommand({})));
    expect(noToken.name).toBe('InvalidClientTokenId');
    const otherToken = await errorOf(
      sts({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: `${c.SessionToken!}x` }).send(new GetCallerIdentityCommand({})),
    );
    expect(otherToken.name).toBe('InvalidClientTokenId');
  });

  it('rejects a tampered body (signature covers the raw body)', async () => {
    // Sign a real request, then replay it with one byte of the body changed.
    const captured: { headers?: Record<string, string>; body?: string } = {};
    const client = sts();
    client.middlewareStack.add(
      (next) => async (args) => {
        const r = args.request as { headers: Record<string, string>; body: string };
        captured.headers = { ...r.headers };
        captured.body = r.body;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'capture' },
    );
    await client.send(new AssumeRoleCommand(base()));
    const headers = { ...captured.headers! };
    delete headers['content-length'];
    const replay = await fetch(fake.url, { method: 'POST', headers, body: captured.body!.replace('deploy.s1', 'deploy.s2') });
    expect(replay.status).toBe(403);
    expect(await replay.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    const same = await fetch(fake.url, { method: 'POST', headers, body: captured.body! });
    expect(same.status).toBe(200);
  });
});

describe('fake STS: AssumeRole limits', () => {
  it.each<[string, Partial<AssumeRoleCommandInput>, string]>([
    ['a 65-char session name', { RoleSessionName: 'a'.repeat(65) }, 'ValidationError'],
    ['a 1-char session name', { RoleSessionName: 'a' }, 'ValidationError'],
    ['a session name with a space', { RoleSessionName: 'de ploy' }, 'ValidationError'],
    ['a unicode source identity', { SourceIdentity: 'sg-デプロイ' }, 'ValidationError'],
    ['a 65-char source identity', { SourceIdentity: 's'.repeat(65) }, 'ValidationError'],
    ['899 seconds', { DurationSeconds: 899 }, 'ValidationError'],
    ['43201 seconds', { DurationSeconds: 43_201 }, 'ValidationError'],
    ['more than the role max', { DurationSeconds: 7201 }, 'ValidationError'],
    ['a 2049-char session policy', { Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'b'.repeat(2000)}` }] }) }, 'ValidationError'],
    ['a session policy that is not JSON', { Policy: '{nope' }, 'MalformedPolicyDocumentException'],
    ['11 policy ARNs', { PolicyArns: Array.from({ length: 11 }, (_, i) => ({ arn: `arn:aws:iam::123456789012:policy/p${i}` })) }, 'ValidationError'],
    ['51 tags', { Tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) }, 'ValidationError'],
    ['a 129-char tag key', { Tags: [{ Key: 'k'.repeat(129), Value: 'v' }] }, 'ValidationError'],
    ['a 257-char tag value', { Tags: [{ Key: 'k', Value: 'v'.repeat(257) }] }, 'ValidationError'],
    ['a tag value with a bad character', { Tags: [{ Key: 'k', Value: 'a;b' }] }, 'ValidationError'],
    ['duplicate tag keys (case-insensitive)', { Tags: [{ Key: 'Team', Value: 'a' }, { Key: 'team', Value: 'b' }] }, 'InvalidParameterValue'],
    ['a transitive key that is not a tag', { Tags: [{ Key: 'a', Value: 'b' }], TransitiveTagKeys: ['c'] }, 'InvalidParameterValue'],
    ['50 incompressible maximal tags', { Tags: Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: randomBytes(192).toString('base64') })) }, 'PackedPolicyTooLargeException'],
  ])('rejects %s', async (_label, patch, code) => {
    const e = await errorOf(sts().send(new AssumeRoleCommand({ ...base(), ...patch })));
    expect(e.name).toBe(code);
    expect(fake.sessions()).toHaveLength(0);
  });

  it('accepts the limits themselves (64-char names, 256-char values, 50 tags, 43200 s on a 12 h role)', async () => {
    const big = fake.createRole('big', { maxSessionDuration: 43_200 });
    const out = await sts().send(
      new AssumeRoleCommand({
        RoleArn: big,
        RoleSessionName: 'n'.repeat(64),
        SourceIdentity: 's'.repeat(64),
        DurationSeconds: 43_200,
        Tags: [{ Key: 'k'.repeat(128), Value: 'v'.repeat(256) }, ...Array.from({ length: 49 }, (_, i) => ({ Key: `t${i}`, Value: 'ü' }))],
      }),
    );
    expect(out.Credentials?.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(out.SourceIdentity).toBe('s'.repeat(64));
  });

  it('refuses SourceIdentity unless the trust allows sts:SetSourceIdentity', async () => {
    const strict = fake.createRole('no-si', { trustAllowsSourceIdentity: false });
    const e = await errorOf(sts().send(new AssumeRoleCommand({ ...base(), RoleArn: strict })));
    expect(e).toMatchObject({ name: 'AccessDenied', status: 403 });
  });

  it('refuses an unknown role with AccessDenied (and echoes ARNs in the message, as AWS does)', async () => {
    const e = await errorOf(sts().send(new AssumeRoleCommand({ ...base(), RoleArn: 'arn:aws:iam::123456789012:role/nope' })));
    expect(e.name).toBe('AccessDenied');
    expect(e.message).toContain('arn:aws:iam::123456789012:role/nope');
  });
});

describe('fake STS: issued sessions', () => {
  it('works until expiry, then answers ExpiredToken', async () => {
    const c = (await sts().send(new AssumeRoleCommand(base()))).Credentials!;
    const creds = { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! };
    const who = await sts(creds).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe('arn:aws:sts::123456789012:assumed-role/deployer/deploy.s1');
    fake.advanceClock(901_000);
    const e = await errorOf(sts(creds).send(new GetCallerIdentityCommand({})));
    expect(e.name).toBe('ExpiredToken');
  });

  it('applies a Deny on aws:SourceIdentity to policy-checked calls and to role chaining, but not to GetCallerIdentity (as AWS)', async () => {
    const second = fake.createRole('second');
    const c = (await sts().send(new AssumeRoleCommand(base()))).Credentials!;
    const creds = { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! };
    await sts(creds).send(new GetAccessKeyInfoCommand({ AccessKeyId: c.AccessKeyId! }));
    const chained = (await sts(creds).send(new AssumeRoleCommand({ RoleArn: second, RoleSessionName: 'chained' }))).Credentials!;
    const chainedCreds = { accessKeyId: chained.AccessKeyId!, secretAccessKey: chained.SecretAccessKey!, sessionToken: chained.SessionToken! };
    expect(fake.sessions().find((s) => s.accessKeyId === chained.AccessKeyId)?.sourceIdentity).toBe('sg-s1');

    const deny = { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: 'sts:*', Resource: '*', Condition: { StringEquals: { 'aws:SourceIdentity': ['sg-other', 'sg-s1'] } } }] };
    await iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'deny', PolicyDocument: JSON.stringify(deny) }));
    expect((await errorOf(sts(creds).send(new GetAccessKeyInfoCommand({ AccessKeyId: c.AccessKeyId! })))).name).toBe('AccessDenied');
    expect((await errorOf(sts(creds).send(new AssumeRoleCommand({ RoleArn: second, RoleSessionName: 'again' })))).name).toBe('AccessDenied');
    await sts(creds).send(new GetCallerIdentityCommand({}));
    // The chained session lives on the second role: the deny must be on that role too
    // (stagegate denies on every role it issues for; chaining targets need their own).
    await sts(chainedCreds).send(new GetAccessKeyInfoCommand({ AccessKeyId: chained.AccessKeyId! }));
    await iam().send(new PutRolePolicyCommand({ RoleName: 'second', PolicyName: 'deny', PolicyDocument: JSON.stringify(deny) }));
    expect((await errorOf(sts(chainedCreds).send(new GetAccessKeyInfoCommand({ AccessKeyId: chained.AccessKeyId! })))).name).toBe('AccessDenied');
  });

  it('does not deny a session whose source identity is not listed', async () => {
    const c = (await sts().send(new AssumeRoleCommand({ ...base(), SourceIdentity: 'sg-s2' }))).Credentials!;
    const deny = { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: '*', Resource: '*', Condition: { 'ForAnyValue:StringEquals': { 'aws:SourceIdentity': 'sg-s1' } } }] };
    await iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'deny', PolicyDocument: JSON.stringify(deny) }));
    await sts({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! }).send(
      new GetAccessKeyInfoCommand({ AccessKeyId: c.AccessKeyId! }),
    );
  });

  it('narrows a session to its session policy', async () => {
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] });
    const c = (await sts().send(new AssumeRoleCommand({ ...base(), Policy: policy }))).Credentials!;
    const e = await errorOf(
      sts({ accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! }).send(new GetAccessKeyInfoCommand({ AccessKeyId: c.AccessKeyId! })),
    );
    expect(e.name).toBe('AccessDenied');
  });
});

describe('fake IAM: inline role policies', () => {
  const doc = (n: number) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'A', Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringEquals: { 'aws:SourceIdentity': ['x'.repeat(n)] } } }] });

  it('round-trips a document, URL-encoded on the wire as IAM does', async () => {
    await iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'p', PolicyDocument: doc(10) }));
    const out = await iam().send(new GetRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'p' }));
    expect(out.PolicyDocument).toBe(encodeURIComponent(doc(10)));
    expect((await iam().send(new ListRolePoliciesCommand({ RoleName: 'deployer' }))).PolicyNames).toEqual(['p']);
    await iam().send(new DeleteRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'p' }));
    expect((await errorOf(iam().send(new GetRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'p' })))).name).toBe('NoSuchEntityException');
  });

  it('enforces the 10,240-character aggregate per role', async () => {
    const overhead = doc(0).length;
    await iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'a', PolicyDocument: doc(6000 - overhead) }));
    const e = await errorOf(iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'b', PolicyDocument: doc(4241 - overhead) })));
    expect(e).toMatchObject({ name: 'LimitExceededException', status: 409 });
    await iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'b', PolicyDocument: doc(4240 - overhead) }));
    expect(fake.inlinePolicyChars('deployer')).toBe(10_240);
  });

  it('rejects malformed documents, duplicate Sids and unknown condition operators', async () => {
    for (const bad of [
      '{',
      JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'A', Effect: 'Deny', Action: '*', Resource: '*' }, { Sid: 'A', Effect: 'Deny', Action: '*', Resource: '*' }] }),
      JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'a-b', Effect: 'Deny', Action: '*', Resource: '*' }] }),
      JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: '*', Resource: '*', Condition: { Bogus: { k: 'v' } } }] }),
    ]) {
      const e = await errorOf(iam().send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'p', PolicyDocument: bad })));
      expect(e.name).toBe('MalformedPolicyDocumentException');
    }
  });

  it('answers NoSuchEntity for an unknown role', async () => {
    const e = await errorOf(iam().send(new PutRolePolicyCommand({ RoleName: 'ghost', PolicyName: 'p', PolicyDocument: doc(1) })));
    expect(e).toMatchObject({ name: 'NoSuchEntityException', status: 404 });
  });
});

describe('fake STS/IAM: outage mode', () => {
  it('answers 503 ServiceUnavailable, or throttles, then recovers', async () => {
    fake.setOutage(true);
    expect(await errorOf(sts().send(new GetCallerIdentityCommand({})))).toMatchObject({ name: 'ServiceUnavailable', status: 503 });
    fake.setOutage({ status: 400, code: 'Throttling', services: ['iam'] });
    await sts().send(new GetCallerIdentityCommand({}));
    expect(await errorOf(iam().send(new ListRolePoliciesCommand({ RoleName: 'deployer' })))).toMatchObject({ name: 'Throttling', status: 400 });
    fake.setOutage(false);
    await iam().send(new ListRolePoliciesCommand({ RoleName: 'deployer' }));
    expect(fake.callCount('ListRolePolicies')).toBe(2);
  });
});

/**
 * The `aws-sts` provider through a real broker over HTTP: the credentials a stage gets
 * work at the (fake) STS with the real AWS SDK, the close reports `deny-policy`, and
 * afterwards the same SDK calls are refused — for that stage only. Parameter limits
 * (stage names, long and odd build keys and claim values) and the deny-list budget
 * under many concurrent stages on one role, through the broker.
 */
import { buildConfig, ConfigError } from '../../broker/config/load-config';
import { call } from '../harness/broker';
import {
  AWS_ROLE,
  DENY_POLICY,
  LONGEST_STAGE,
  startProviderWorld,
  startWorldBroker,
  worldConfig,
  type ProviderWorld,
  type WorldBroker,
} from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces, secretsOfAnswer } from './provider-harness/scan-broker-traces';
import { tryAwsCredential, tryAwsRoleChain, tryVaultToken, type AwsValues } from './provider-harness/use-stage-credentials';

jest.setTimeout(30_000);

const awsValuesOf = (opened: any, name = 'aws'): AwsValues => opened.credentials.find((c: any) => c.name === name).values;

describe('aws-sts through the broker', () => {
  let world: ProviderWorld;
  let wb: WorldBroker;
  /** Answers that must hold no secret (close answers, error bodies); open answers carry the credentials by design. */
  const answers: string[] = [];
  const secrets: string[] = [];
  beforeAll(async () => {
    world = await startProviderWorld();
    wb = await startWorldBroker(world);
    secrets.push(...world.brokerSecrets);
  });
  afterAll(async () => {
    await wb?.close();
    await world?.close();
  });

  it('issues working credentials, reports deny-policy on close, and they are dead afterwards (only that stage)', async () => {
    const first = await wb.open('aws-deploy');
    const other = await wb.open('aws-deploy');
    expect(first.status).toBe(201);
    expect(other.status).toBe(201);
    secrets.push(...secretsOfAnswer(first.body), ...secretsOfAnswer(other.body));
    const [cred] = first.body.credentials;
    expect(cred).toMatchObject({ name: 'aws', provider: 'aws', kind: 'aws', revocation: 'deny-policy', meta: { region: 'us-east-1' } });
    expect(Object.keys(cred.values).sort()).toEqual(['accessKeyId', 'secretAccessKey', 'sessionToken']);
    const v = awsValuesOf(first.body);

    // The stage's session as STS recorded it: its SourceIdentity is the stage's.
    const session = world.aws.sessions().find((s) => s.accessKeyId === v.accessKeyId)!;
    expect(session.sourceIdentity).toBe(`sg-${first.body.stageId}`);
    expect(session.roleName).toBe(AWS_ROLE);
    expect(session.tags).toEqual(expect.arrayContaining([{ Key: 'stagegate:stage-id', Value: first.body.stageId }]));

    expect(await tryAwsCredential(world.aws.url, v)).toBe('ok');
    expect(await tryAwsRoleChain(world.aws.url, v, world.awsSecondRoleArn)).toBe('ok');

    const t0 = world.clock.now();
    const closed = await call(wb.url, 'DELETE', `/v1/stages/${first.body.stageId}`, { token: first.body.stageToken, body: { exitCode: 0 } });
    const t1 = world.clock.now();
    answers.push(closed.text);
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closed');
    expect(closed.body.revoked).toEqual([expect.objectContaining({ name: 'aws', provider: 'aws', method: 'deny-policy', state: 'revoked' })]);
    // effectiveAt = the deny's write time + the configured IAM propagation allowance (60 s).
    const r = closed.body.revoked[0];
    expect(Date.parse(r.effectiveAt)).toBeGreaterThanOrEqual(t0 + 60_000);
    expect(Date.parse(r.effectiveAt)).toBeLessThanOrEqual(t1 + 60_000);

    // The same SDK calls are now refused, also through role chaining.
    expect(await tryAwsCredential(world.aws.url, v)).toBe('AccessDenied');
    expect(await tryAwsRoleChain(world.aws.url, v, world.awsSecondRoleArn)).toBe('AccessDenied');
    // Per stage: another open stage of the same role keeps working.
    expect(await tryAwsCredential(world.aws.url, awsValuesOf(other.body))).toBe('ok');
    expect(world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]).toContain(`sg-${first.body.stageId}`);
    expect(world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]).not.toContain(`sg-${other.body.stageId}`);

    const again = await call(wb.url, 'DELETE', `/v1/stages/${first.body.stageId}`, { token: first.body.stageToken });
    expect(again.body.revoked[0]).toMatchObject({ method: 'deny-policy', state: 'revoked', at: r.at });

    const closedOther = await call(wb.url, 'DELETE', `/v1/stages/${other.body.stageId}`, { token: other.body.stageToken });
    answers.push(closedOther.text);
    expect(await tryAwsCredential(world.aws.url, awsValuesOf(other.body))).toBe('AccessDenied');

    const audit = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === first.body.stageId).map((e) => e.type);
    expect(audit).toEqual(['stage.opened', 'credential.issued', 'stage.closing', 'credential.revoked', 'stage.closed']);
    expectNoSecretTraces(await collectBrokerTraces(wb, answers), secrets);
  });

  it('limits stage names to 63 characters, in config and on the wire', async () => {
    expect(LONGEST_STAGE).toHaveLength(63);
    const cfg = worldConfig(world);
    cfg.rules[0].stages[`${LONGEST_STAGE}x`] = { grants: [{ name: 'aws', provider: 'aws' }] };
    let err: unknown;
    try {
      buildConfig(cfg, world.dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(String((err as Error).message)).toContain(`rules[0].stages`);
    const tooLong = await wb.open(`${LONGEST_STAGE}x`);
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe('INVALID_REQUEST');
  });

  it('opens with a 63-character stage, a very long build key with any characters, and claim tags of 65+ bad characters', async () => {
    // The build key template takes claims verbatim: any characters, any length.
    const workflow = `release "quoted", <tag>; ünïcødé/路径 🚀 ${'x,y;z*'.repeat(150)} end`;
    const actor = `${'a'.repeat(70)},bad;chars*?"🚀`;
    const ref = `refs/heads/${'feature/'.repeat(20)}ok`;
    const opened = await wb.open(LONGEST_STAGE, { workflow, actor, ref });
    expect(opened.status).toBe(201);
    secrets.push(...secretsOfAnswer(opened.body));
    expect(opened.body.stage).toBe(LONGEST_STAGE);
    expect(opened.body.build).toBe(`acme/web/${workflow}/${opened.body.build.split('/').at(-2)}/1`);
    expect(opened.body.build.length).toBeGreaterThan(900);

    // STS accepted every parameter (the fake enforces STS's limits), and the session works.
    const v = awsValuesOf(opened.body);
    expect(await tryAwsCredential(world.aws.url, v)).toBe('ok');
    const session = world.aws.sessions().find((s) => s.accessKeyId === v.accessKeyId)!;
    expect(session.sessionName.length).toBeLessThanOrEqual(64);
    expect(session.sessionName).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(session.sourceIdentity).toBe(`sg-${opened.body.stageId}`);
    const tag = (key: string) => session.tags.find((t) => t.Key === key)?.Value;
    for (const t of session.tags) {
      expect(t.Value.length).toBeLessThanOrEqual(256);
      expect(t.Value).toMatch(/^[\p{L}\p{Z}\p{N}_.:/=+@-]*$/u);
    }
    expect(tag('stagegate:build')).toHaveLength(256);
    expect(tag('stagegate:stage')).toBe(LONGEST_STAGE);
    expect(tag('workflow')).toHaveLength(256);
    // Characters outside STS's tag charset became `_`; the 65+ characters are kept.
    expect(tag('actor')).toBe(`${'a'.repeat(70)}_bad_chars____`);
    expect(tag('ref')).toBe(ref);

    // Vault took the same stage (token metadata clipped, display name within Vault's rules).
    const vaultCred = opened.body.credentials.find((c: any) => c.name === 'vault-token');
    expect(await tryVaultToken(world.vault.url, vaultCred.values.token)).toBe('ok');
    const vt = world.vault.tokens().find((t) => t.meta.stagegate_stage_id === opened.body.stageId)!;
    expect(vt.meta.stagegate_build!.length).toBeLessThanOrEqual(256);

    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    answers.push(closed.text);
    expect(closed.body.revoked.map((x: any) => [x.name, x.method, x.state])).toEqual([
      ['aws', 'deny-policy', 'revoked'],
      ['vault-token', 'native', 'revoked'],
    ]);
    expect(await tryAwsCredential(world.aws.url, v)).toBe('AccessDenied');
    expect(await tryVaultToken(world.vault.url, vaultCred.values.token)).toBe(403);
    expectNoSecretTraces(await collectBrokerTraces(wb, answers), secrets);
  });
});

describe('aws-sts deny list under many concurrent stages on one role', () => {
  let world: ProviderWorld;
  let wb: WorldBroker;
  beforeAll(async () => {
    world = await startProviderWorld();
    wb = await startWorldBroker(world);
  });
  afterAll(async () => {
    await wb?.close();
    await world?.close();
  });

  const WAVE = 150;

  /** Open WAVE stages at once, check they work, close them at once, check every one is dead. */
  async function wave(): Promise<string[]> {
    const opened = await Promise.all(Array.from({ length: WAVE }, () => wb.open('aws-deploy')));
    expect(opened.map((o) => o.status)).toEqual(Array(WAVE).fill(201));
    const values = opened.map((o) => awsValuesOf(o.body));
    expect(await tryAwsCredential(world.aws.url, values[0]!)).toBe('ok');
    expect(await tryAwsCredential(world.aws.url, values[WAVE - 1]!)).toBe('ok');
    const closed = await Promise.all(opened.map((o) => call(wb.url, 'DELETE', `/v1/stages/${o.body.stageId}`, { token: o.body.stageToken, body: { exitCode: 0 } })));
    expect(closed.map((c) => c.status)).toEqual(Array(WAVE).fill(200));
    expect(closed.filter((c) => c.body.state === 'closed' && c.body.revoked[0].method === 'deny-policy' && c.body.revoked[0].state === 'revoked')).toHaveLength(WAVE);
    // No lost deny: every closed stage's credentials are refused, each checked at the fake.
    const results = await Promise.all(values.map((v) => tryAwsCredential(world.aws.url, v)));
    expect(results.filter((r) => r !== 'AccessDenied')).toEqual([]);
    const doc = world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]!;
    for (const o of opened) expect(doc).toContain(`sg-${o.body.stageId}`);
    expect(world.aws.maxInlinePolicyChars(AWS_ROLE)).toBeLessThanOrEqual(10_240);
    return opened.map((o) => `sg-${o.body.stageId}`);
  }

  it('never loses a deny, stays within 10,240 characters, and garbage-collects denies once the credentials expired', async () => {
    const first = await wave();
    // Two waves' denies would not fit in IAM's 10,240 characters together: the second wave
    // only fits because the first one's denies were collected after their credentials expired.
    expect(first.reduce((n, id) => n + id.length + 3, 0) * 2).toBeGreaterThan(10_240);

    // Credentials of the first wave end at +15 min; their denies may go after expiry +
    // skew (300 s) + propagation (60 s), rounded up to the 900 s bucket. Two hours on,
    // the reaper's housekeeping (maintain) collects them.
    world.clock.advance(2 * 3600_000);
    const deadline = Date.now() + 5000;
    while (world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY] !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]).toBeUndefined();

    const second = await wave();
    const doc = world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]!;
    for (const id of first) expect(doc).not.toContain(id);
    expect(second).toHaveLength(WAVE);
    expect(world.aws.maxInlinePolicyChars(AWS_ROLE)).toBeLessThanOrEqual(10_240);
    expect(world.aws.calls.filter((c) => c.action === 'PutRolePolicy' && c.status !== 200)).toEqual([]);
  });
});

describe('aws-sts deny list when it is full', () => {
  let world: ProviderWorld;
  let wb: WorldBroker;
  beforeAll(async () => {
    world = await startProviderWorld();
    // A small budget (as for a role that carries other inline policies) to reach "full" quickly.
    wb = await startWorldBroker(world, { configure: (c) => void (c.providers.aws.denyPolicyMaxChars = 2048) });
  });
  afterAll(async () => {
    await wb?.close();
    await world?.close();
  });

  it('never drops a live deny to make room: the overflow stays pending (and says so) until those credentials expired', async () => {
    const N = 60;
    const opened = await Promise.all(Array.from({ length: N }, () => wb.open('aws-deploy')));
    expect(opened.every((o) => o.status === 201)).toBe(true);
    const closed = await Promise.all(opened.map((o) => call(wb.url, 'DELETE', `/v1/stages/${o.body.stageId}`, { token: o.body.stageToken })));
    const revoked = closed.filter((c) => c.body.revoked[0].state === 'revoked');
    const pending = closed.filter((c) => c.body.revoked[0].state === 'pending');
    expect(revoked.length + pending.length).toBe(N);
    expect(revoked.length).toBeGreaterThanOrEqual(30);
    expect(pending.length).toBeGreaterThanOrEqual(1);
    for (const p of pending) expect(p.body).toMatchObject({ state: 'closing', revoked: [{ method: 'deny-policy', lastErrorCode: 'PROVIDER_UNAVAILABLE' }] });
    expect(world.aws.maxInlinePolicyChars(AWS_ROLE)).toBeLessThanOrEqual(2048);

    const doc = world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]!;
    const byId = new Map(opened.map((o) => [o.body.stageId as string, o]));
    for (const c of revoked) {
      expect(doc).toContain(`sg-${c.body.stageId}`);
      expect(await tryAwsCredential(world.aws.url, awsValuesOf(byId.get(c.body.stageId)!.body))).toBe('AccessDenied');
    }
    // Honest about the overflow: no deny, so those sessions still work, and the close said "pending".
    for (const c of pending) expect(doc).not.toContain(`sg-${c.body.stageId}`);
    expect(await tryAwsCredential(world.aws.url, awsValuesOf(byId.get(pending[0]!.body.stageId)!.body))).toBe('ok');

    // Once those credentials have expired on their own (15 min + skew + propagation), the
    // reaper's retry finds nothing left to deny and finishes the stages.
    world.clock.advance(30 * 60_000);
    for (const c of pending) {
      const deadline = Date.now() + 5000;
      let view;
      do {
        await new Promise((r) => setTimeout(r, 50));
        view = (await call(wb.url, 'GET', `/v1/stages/${c.body.stageId}`, { token: byId.get(c.body.stageId)!.body.stageToken })).body;
      } while (view.state !== 'closed' && Date.now() < deadline);
      expect(view).toMatchObject({ state: 'closed', grants: [{ state: 'revoked', method: 'deny-policy' }] });
      expect(await tryAwsCredential(world.aws.url, awsValuesOf(byId.get(c.body.stageId)!.body))).toBe('ExpiredToken');
    }
    expect(world.aws.maxInlinePolicyChars(AWS_ROLE)).toBeLessThanOrEqual(2048);
  });
});

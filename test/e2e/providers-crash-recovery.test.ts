/**
 * A broker that dies between a provider's mint and recording its handle: what it leaves
 * is a stage `opening` in SQLite with one write-ahead intent per grant, and live
 * credentials at the clouds that nobody recorded. A broker started on the same file
 * must make them useless from the intents alone — AWS: deny the stage's source identity;
 * Vault: find the token by its stage marker and revoke it (its lease with it), or report
 * the TTL backstop when it may not list tokens; GCP: report the intent's `notAfter`,
 * which the token cannot outlive.
 */
import { createHash, randomUUID } from 'node:crypto';
import { buildConfig } from '../../broker/config/load-config';
import { SqliteStore } from '../../broker/store/sqlite-store';
import type { GrantSpec, Handle, IssuedCredential, Provider, StageContext } from '../../providers/provider';
import { createVaultProvider, vaultConfigSchema } from '../../providers/vault';
import { call } from '../harness/broker';
import { createCapturedLogger } from '../harness/capture-logger';
import {
  AWS_ROLE,
  DENY_POLICY,
  startProviderWorld,
  startWorldBroker,
  worldConfig,
  worldProviders,
  type ProviderWorld,
  type WorldBroker,
} from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces } from './provider-harness/scan-broker-traces';
import { tryAwsCredential, tryVaultToken, type AwsValues } from './provider-harness/use-stage-credentials';

jest.setTimeout(20_000);

const MIN = 60_000;
const ADMIN_TOKEN = `admin-${randomUUID()}`;
const ADMIN_SHA256 = createHash('sha256').update(ADMIN_TOKEN).digest('hex');

interface Crashed {
  readonly stageId: string;
  readonly intents: Record<string, Handle>;
  readonly minted: Record<string, IssuedCredential>;
}

/**
 * Do what a broker does up to the crash: commit the stage `opening` with its intents
 * (write-ahead), then have each provider mint — and stop there, recording nothing.
 */
async function crashMidOpen(world: ProviderWorld, stage: string, vaultTokenFile: string): Promise<Crashed> {
  const config = worldConfig(world);
  config.providers.vault.auth.tokenFile = vaultTokenFile;
  const loaded = buildConfig(config, world.dir);
  const log = createCapturedLogger();
  const providers: Map<string, Provider<any>> = worldProviders(world, config, log);
  providers.set('vault', createVaultProvider('vault', vaultConfigSchema.parse(config.providers.vault), { logger: log.logger, now: () => new Date(world.clock.now()) }));
  const def = loaded.policy.rules[0]!.stages.get(stage)!;
  const store = new SqliteStore({ path: loaded.raw.store.sqlite!.path, now: world.clock.now });
  const t = world.clock.now();
  const stageId = randomUUID();
  const ctx: StageContext = {
    stageId,
    build: `acme/web/release/crash-${stageId}/1`,
    stage,
    rule: 'e2e',
    issuer: 'ci',
    claims: { repository: 'acme/web', workflow: 'release' },
    expiresAt: new Date(t + def.ttlSeconds * 1000),
    maxExpiresAt: new Date(t + def.maxTtlSeconds * 1000),
  };
  const specs: GrantSpec[] = def.grants.map((g) => ({ name: g.name, provider: g.provider, params: g.params }));
  const intents = Object.fromEntries(specs.map((s) => [s.name, providers.get(s.provider)!.prepare(s, ctx)]));
  await store.createStage({
    stage: {
      id: stageId,
      build: ctx.build,
      stage,
      phase: 'run',
      rule: 'e2e',
      issuer: 'ci',
      tokenSha256: 'a'.repeat(64),
      identitySha256: 'b'.repeat(64),
      openedAt: t,
      expiresAt: ctx.expiresAt.getTime(),
      maxExpiresAt: ctx.maxExpiresAt.getTime(),
      heartbeatSeconds: def.heartbeatSeconds,
      lastHeartbeatAt: t,
    },
    grants: specs.map((s) => ({ name: s.name, provider: s.provider, intent: intents[s.name]! })),
    once: true,
    requireCleanInstall: false,
    audit: [{ type: 'stage.opened', stageId, data: { crashTest: true } }],
  });
  const minted: Record<string, IssuedCredential> = {};
  for (const s of specs) minted[s.name] = await providers.get(s.provider)!.issue(s, ctx, intents[s.name]!);
  // The process dies here: nothing recorded, nothing revoked.
  await store.close();
  for (const p of providers.values()) await p.close?.();
  return { stageId, intents, minted };
}

const adminView = async (wb: WorldBroker, stageId: string) => (await call(wb.url, 'GET', `/v1/stages/${stageId}`, { token: ADMIN_TOKEN })).body;

describe('crash between a provider call and recording its handle', () => {
  let world: ProviderWorld;
  beforeEach(async () => {
    world = await startProviderWorld();
  });
  afterEach(async () => {
    await world?.close();
  });

  it('a broker restarted on the same SQLite file kills the AWS, Vault and GCP credentials from their intents', async () => {
    const crashed = await crashMidOpen(world, 'all-three', world.vaultTokenFiles.broker);
    const aws = crashed.minted.aws!.values as unknown as AwsValues;
    const vaultToken = crashed.minted['vault-token']!.values.token!;
    const { username } = crashed.minted.db!.values as { username: string };
    const gcpToken = crashed.minted.gcp!.values.accessToken!;
    // They all work: the crash left live credentials behind.
    expect(await tryAwsCredential(world.aws.url, aws)).toBe('ok');
    expect(await tryVaultToken(world.vault.url, vaultToken)).toBe('ok');
    expect(world.vault.isDatabaseUserValid(username)).toBe(true);
    expect(world.gcp.tokenInfo(gcpToken).state).toBe('valid');
    const gcpCalls = world.gcp.calls.generateAccessToken;

    const wb = await startWorldBroker(world, { configure: (c) => void (c.admin = { tokenSha256: [ADMIN_SHA256] }) });
    try {
      // The reaper's first pass (at start) treats every `opening` stage as a dead open.
      const view = await adminView(wb, crashed.stageId);
      expect(view).toMatchObject({ state: 'closed', closeReason: 'crash-recovery' });
      const grants = Object.fromEntries(view.grants.map((g: any) => [g.name, g]));
      expect(grants.aws).toMatchObject({ state: 'revoked', method: 'deny-policy' });
      expect(grants['vault-token']).toMatchObject({ state: 'revoked', method: 'native' });
      expect(grants.db).toMatchObject({ state: 'revoked', method: 'native' });
      // GCP: the backstop is the intent's notAfter, and the token minted under it ends no later.
      expect(grants.gcp).toMatchObject({ state: 'revoked', method: 'expiry', effectiveAt: crashed.intents.gcp!.notAfter });
      expect(crashed.minted.gcp!.expiresAt.getTime()).toBeLessThanOrEqual(Date.parse(String(crashed.intents.gcp!.notAfter)));

      expect(await tryAwsCredential(world.aws.url, aws)).toBe('AccessDenied');
      expect(world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]).toContain(`sg-${crashed.stageId}`);
      expect(await tryVaultToken(world.vault.url, vaultToken)).toBe(403);
      expect(world.vault.isDatabaseUserValid(username)).toBe(false);
      expect(world.vault.tokens().filter((t) => t.meta.stagegate_stage_id === crashed.stageId)).toEqual([]);
      expect(world.gcp.calls.generateAccessToken).toBe(gcpCalls);
      world.clock.advance(Date.parse(String(crashed.intents.gcp!.notAfter)) - world.clock.now() + 1000);
      expect(world.gcp.tokenInfo(gcpToken).state).toBe('expired');

      const audit = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === crashed.stageId);
      expect(audit.filter((e) => e.type === 'credential.revoked')).toHaveLength(4);
      expect(wb.log.lines().some((l) => l.event === 'reaper.recovered')).toBe(true);
      const secrets = [...world.brokerSecrets, ...Object.values(crashed.minted).flatMap((c) => Object.values(c.values))];
      expectNoSecretTraces(await collectBrokerTraces(wb, [JSON.stringify(view)]), secrets);
    } finally {
      await wb.close();
    }
  });

  it('when the broker may not list Vault tokens, the restart reports the TTL backstop, and the token dies then', async () => {
    const crashed = await crashMidOpen(world, 'vault-deploy', world.vaultTokenFiles['broker-nolist']);
    const vaultToken = crashed.minted['vault-token']!.values.token!;
    const wb = await startWorldBroker(world, {
      configure: (c) => {
        c.admin = { tokenSha256: [ADMIN_SHA256] };
        c.providers.vault.auth.tokenFile = world.vaultTokenFiles['broker-nolist'];
      },
    });
    try {
      const view = await adminView(wb, crashed.stageId);
      expect(view).toMatchObject({ state: 'closed', closeReason: 'crash-recovery' });
      const notAfter = String(crashed.intents['vault-token']!.notAfter);
      // Reported honestly: not revoked now, dead at the stage's max TTL (the token's explicit_max_ttl).
      expect(view.grants.map((g: any) => [g.name, g.state, g.method, g.effectiveAt])).toEqual([
        ['vault-token', 'revoked', 'expiry', notAfter],
        ['db', 'revoked', 'expiry', String(crashed.intents.db!.notAfter)],
        ['npm', 'revoked', 'none', expect.any(String)],
      ]);
      expect(await tryVaultToken(world.vault.url, vaultToken)).toBe('ok');
      world.clock.advance(Date.parse(notAfter) - world.clock.now() + 1000);
      expect(await tryVaultToken(world.vault.url, vaultToken)).toBe(403);
    } finally {
      await wb.close();
    }
  });
});

describe('a broker restarted after a crash mid-stage', () => {
  it('revokes the open stages it finds (AWS deny, Vault native) once their heartbeat lapsed', async () => {
    const world = await startProviderWorld();
    try {
      let wb = await startWorldBroker(world, { configure: (c) => void (c.rules[0].stages['all-three'].heartbeat = '5s') });
      const opened = await wb.open('all-three');
      expect(opened.status).toBe(201);
      const values = (name: string) => opened.body.credentials.find((c: any) => c.name === name).values;
      expect(await tryAwsCredential(world.aws.url, values('aws'))).toBe('ok');
      // The broker goes away with the stage open (closing a broker revokes nothing: its
      // store is left as a crash leaves it), and stays away longer than the heartbeat window.
      await wb.close();
      world.clock.advance(6000);
      wb = await startWorldBroker(world, { configure: (c) => void (c.rules[0].stages['all-three'].heartbeat = '5s') });
      try {
        const view = await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
        expect(view.body).toMatchObject({ state: 'closed', closeReason: 'heartbeat-lapsed' });
        expect(await tryAwsCredential(world.aws.url, values('aws'))).toBe('AccessDenied');
        expect(await tryVaultToken(world.vault.url, values('vault-token').token)).toBe(403);
        expect(world.vault.isDatabaseUserValid(values('db').username)).toBe(false);
      } finally {
        await wb.close();
      }
    } finally {
      await world.close();
    }
  });
});

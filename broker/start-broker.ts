/**
 * Wires a broker from a loaded config: store, providers, identity, lifecycle, reaper,
 * HTTP server. `main.ts`, the test harness and the benchmarks all start brokers here.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Provider } from '../providers/provider';
import type { LoadedConfig } from './config/load-config';
import { createDemoIssuer, type DemoIssuer } from './demo/demo-issuer';
import { createApp } from './http/app';
import { createIdentityVerifier } from './identity/verify-identity-token';
import { createReaper, type Reaper } from './lifecycle/reaper';
import { createStageLifecycle, type ProvenanceCheck, type StageLifecycle } from './lifecycle/stage-lifecycle';
import { createLogger } from './logger';
import { createBrokerMetrics, type BrokerMetrics } from './metrics';
import { SqliteStore } from './store/sqlite-store';
import type { Store } from './store/store';
import { provenanceCheckFor } from './config/stage-requirements';

export interface RunningBroker {
  readonly url: string;
  readonly server: Server;
  readonly store: Store;
  readonly lifecycle: StageLifecycle;
  readonly reaper: Reaper;
  readonly providers: ReadonlyMap<string, Provider<any>>;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  readonly demoIssuer?: DemoIssuer;
  /** Stop accepting requests, finish closes in flight, stop the reaper, close providers and store. */
  close(): Promise<void>;
}

export interface StartBrokerOptions {
  readonly logger?: Logger;
  /** Override `listen` (tests use port 0). */
  readonly listen?: { host: string; port: number };
  readonly now?: () => number;
  /** Provider instances to use instead of the configured ones (by name): tests inject clients pointed at fakes. */
  readonly providers?: ReadonlyMap<string, Provider<any>>;
  readonly provenance?: ProvenanceCheck;
}

export async function startBroker(config: LoadedConfig, options: StartBrokerOptions = {}): Promise<RunningBroker> {
  const raw = config.raw;
  const logger = options.logger ?? createLogger({ level: raw.logging.level });
  const now = options.now ?? Date.now;
  const metrics = createBrokerMetrics({ defaultMetrics: true });
  const dbPath = raw.store.sqlite!.path;
  const store = new SqliteStore({ path: dbPath === ':memory:' || isAbsolute(dbPath) ? dbPath : resolve(config.baseDir, dbPath), now });

  const providers = new Map<string, Provider<any>>();
  for (const setup of config.providers) {
    const injected = options.providers?.get(setup.name);
    providers.set(
      setup.name,
      injected ?? setup.factory.create(setup.name, setup.config, { logger: logger.child({ provider: setup.name }), now: () => new Date(now()) }),
    );
  }

  let demoIssuer: DemoIssuer | undefined;
  let issuers = raw.issuers;
  if (raw.demoIssuer.enabled) {
    const demoCfg = raw.issuers.find((i) => i.name === raw.demoIssuer.issuer)!;
    demoIssuer = await createDemoIssuer({
      issuer: demoCfg.issuer,
      audience: demoCfg.audience,
      defaultClaims: raw.demoIssuer.claims,
      ttlSeconds: raw.demoIssuer.tokenTtlSeconds,
    });
    issuers = raw.issuers.map((i) => (i === demoCfg ? { ...i, jwks: demoIssuer!.jwks as { keys: Record<string, unknown>[] } } : i));
    logger.warn({ event: 'demo-issuer.enabled', issuer: demoCfg.name }, 'DEMO issuer enabled: anyone on loopback can mint identity tokens. Development only.');
  }

  const lifecycle = createStageLifecycle({
    store,
    policy: config.policy,
    identity: createIdentityVerifier(issuers),
    providers,
    logger,
    metrics,
    now,
    provenance: options.provenance ?? provenanceCheckFor(config),
    adminTokenSha256: raw.admin.tokenSha256,
    revokeBackoff: { initialMs: raw.reaper.revokeBackoffInitialMs, maxMs: raw.reaper.revokeBackoffMaxMs },
  });
  const reaper = createReaper({ store, lifecycle, providers, logger, metrics, intervalMs: raw.reaper.intervalMs, now });
  await reaper.start();

  const app = createApp({ lifecycle, store, providers, metrics, logger, maxBodyBytes: raw.limits.maxBodyBytes, demoIssuer });
  const server = createServer(app.callback());
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  const listen = options.listen ?? raw.listen;
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(listen.port, listen.host, () => res());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ event: 'broker.listening', url, store: 'sqlite', providers: [...providers.keys()] }, 'stagegate broker listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    server,
    store,
    lifecycle,
    reaper,
    providers,
    metrics,
    logger,
    demoIssuer,
    close() {
      closing ??= (async () => {
        await new Promise<void>((res) => {
          server.close(() => res());
          server.closeIdleConnections();
        });
        await lifecycle.drain();
        await reaper.stop();
        for (const p of providers.values()) await p.close?.();
        await store.close();
      })();
      return closing;
    },
  };
}

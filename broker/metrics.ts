/**
 * Prometheus metrics of one broker (one registry per app, so tests and several apps in
 * one process do not collide). Labels carry provider names, codes and methods only.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface BrokerMetrics {
  readonly registry: Registry;
  readonly opens: Counter<'result'>;
  readonly denials: Counter<'code'>;
  readonly issueSeconds: Histogram<'provider'>;
  readonly revocations: Counter<'provider' | 'method' | 'result'>;
  /** From the close request (or reaper decision) to the provider's revoke returning. */
  readonly revocationLagSeconds: Histogram<'provider'>;
  readonly openStages: Gauge;
  readonly reaperBacklog: Gauge;
}

export function createBrokerMetrics(options: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'stagegate_process_' });
  const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  return {
    registry,
    opens: new Counter({ name: 'stagegate_stage_opens_total', help: 'Stage open requests by result', labelNames: ['result'], registers: [registry] }),
    denials: new Counter({ name: 'stagegate_denials_total', help: 'Denied stage opens by error code', labelNames: ['code'], registers: [registry] }),
    issueSeconds: new Histogram({ name: 'stagegate_issue_duration_seconds', help: 'Provider issue latency', labelNames: ['provider'], buckets, registers: [registry] }),
    revocations: new Counter({ name: 'stagegate_revocations_total', help: 'Revocation attempts', labelNames: ['provider', 'method', 'result'], registers: [registry] }),
    revocationLagSeconds: new Histogram({ name: 'stagegate_revocation_lag_seconds', help: 'Stage exit to provider revoke', labelNames: ['provider'], buckets, registers: [registry] }),
    openStages: new Gauge({ name: 'stagegate_open_stages', help: 'Stages open or opening', registers: [registry] }),
    reaperBacklog: new Gauge({ name: 'stagegate_reaper_backlog', help: 'Grants waiting for revocation', registers: [registry] }),
  };
}

/**
 * The reaper: closes stages whose heartbeat lapsed or whose TTL ended, retries failed
 * revocations with backoff, and on start resumes whatever a crash left pending
 * (stages still `opening`, grants still `revoking`).
 */
import type { Logger } from 'pino';
import type { Provider } from '../../providers/provider';
import type { BrokerMetrics } from '../metrics';
import type { GrantRecord, Store } from '../store/store';
import { REVOKE_CLAIM_MS, type StageLifecycle } from './stage-lifecycle';

export interface ReaperOptions {
  readonly store: Store;
  readonly lifecycle: StageLifecycle;
  readonly providers: ReadonlyMap<string, Provider<any>>;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  /** Time between passes, ms. */
  readonly intervalMs: number;
  /** An `opening` stage older than this belongs to a dead open, ms. */
  readonly staleOpeningMs?: number;
  /** How many revocations run at once. */
  readonly concurrency?: number;
  /** Time between provider housekeeping calls (`maintain`), ms. */
  readonly maintainEveryMs?: number;
  readonly now?: () => number;
}

export interface ReaperPassResult {
  readonly reaped: number;
  readonly retried: number;
}

export interface Reaper {
  /** Run the first pass (crash recovery: every `opening` stage is stale) and schedule the rest. */
  start(): Promise<ReaperPassResult>;
  /** One pass, for tests and benchmarks. */
  runOnce(options?: { recovering?: boolean }): Promise<ReaperPassResult>;
  stop(): Promise<void>;
}

const BATCH = 1000;

/** Run `fn` over items with at most `limit` in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

export function createReaper(options: ReaperOptions): Reaper {
  const { store, lifecycle, logger, metrics, providers } = options;
  const now = options.now ?? Date.now;
  const staleOpeningMs = options.staleOpeningMs ?? 120_000;
  const concurrency = options.concurrency ?? 64;
  const maintainEveryMs = options.maintainEveryMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  let lastMaintain = 0;

  async function runOnce({ recovering = false } = {}): Promise<ReaperPassResult> {
    let reaped = 0;
    let retried = 0;
    for (;;) {
      const t = now();
      const lapsed = await store.findLapsed(t, recovering ? t + 1 : t - staleOpeningMs, BATCH);
      if (lapsed.length === 0) break;
      await forEachLimited(lapsed, concurrency, (s) =>
        lifecycle.reapStage(s, s.state === 'opening' ? 'crash-recovery' : s.expiresAt < t ? 'ttl-expired' : 'heartbeat-lapsed'),
      );
      reaped += lapsed.length;
      if (lapsed.length < BATCH) break;
    }
    for (;;) {
      const t = now();
      const due = await store.claimDueRevocations(t, t + REVOKE_CLAIM_MS, BATCH);
      if (due.length === 0) break;
      const byStage = new Map<string, GrantRecord[]>();
      for (const g of due) byStage.set(g.stageId, [...(byStage.get(g.stageId) ?? []), g]);
      await forEachLimited([...byStage], concurrency, ([stageId, grants]) => lifecycle.revokeClaimed(stageId, grants, t));
      retried += due.length;
      if (due.length < BATCH) break;
    }
    for (const id of await store.findFinishable(BATCH)) await lifecycle.finish(id);
    const t = now();
    if (t - lastMaintain >= maintainEveryMs) {
      lastMaintain = t;
      for (const p of providers.values()) {
        await p.maintain?.(new Date(t)).catch((err: unknown) => {
          logger.warn({ event: 'provider.maintain-failed', provider: p.name, code: (err as { code?: string }).code ?? 'ERROR' }, 'provider housekeeping failed');
        });
      }
    }
    const counts = await store.counts();
    metrics.openStages.set(counts.openStages);
    metrics.reaperBacklog.set(counts.pendingRevocations);
    return { reaped, retried };
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runOnce()
        .catch((err: unknown) => logger.error({ event: 'reaper.failed', err: { name: (err as Error).name } }, 'reaper pass failed'))
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, options.intervalMs);
    timer.unref();
  }

  return {
    async start() {
      const result = await runOnce({ recovering: true });
      if (result.reaped + result.retried > 0) logger.info({ event: 'reaper.recovered', ...result }, 'resumed pending revocations');
      schedule();
      return result;
    },
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

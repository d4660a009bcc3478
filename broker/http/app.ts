/**
 * The broker's HTTP API v1 (docs/api.md, docs/openapi.yaml). Routes parse, call the
 * stage lifecycle, and map results; they hold no rules. One error middleware at the
 * top turns coded errors into `{ error: { code, message, details } }`; anything else is
 * logged and answered as a bare INTERNAL error.
 */
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { StagegateError, isStagegateError } from '../../sdk/errors';
import type { Provider } from '../../providers/provider';
import type { DemoIssuer } from '../demo/demo-issuer';
import type { StageLifecycle } from '../lifecycle/stage-lifecycle';
import type { BrokerMetrics } from '../metrics';
import type { Store } from '../store/store';
import { checkEvidenceLimits } from '../provenance/evidence-limits';
import { readJsonBody } from './request-body';
import { STAGE_ID, closeStageBodySchema, devCheckBodySchema, openStageBodySchema } from './request-schemas';

export interface AppDeps {
  readonly lifecycle: StageLifecycle;
  readonly store: Store;
  readonly providers: ReadonlyMap<string, Provider<any>>;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly demoIssuer?: DemoIssuer;
}

interface DevChecker {
  check(value: string): unknown;
}
const isDevChecker = (p: unknown): p is DevChecker => typeof (p as DevChecker).check === 'function';

function bearer(ctx: Context): string | undefined {
  const header = ctx.get('authorization');
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  throw new StagegateError('INVALID_REQUEST', 'the request body is invalid', {
    details: {
      problems: r.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    },
  });
}

function stageId(ctx: Context & { params: Record<string, string> }): string {
  const id = ctx.params.id ?? '';
  if (!STAGE_ID.test(id)) throw new StagegateError('STAGE_NOT_FOUND', 'no such stage', { details: {} });
  return id;
}

const isLoopback = (ip: string) => ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';

export function createApp(deps: AppDeps): Koa {
  const { lifecycle, logger, metrics } = deps;
  const app = new Koa();
  app.proxy = false;
  app.silent = true;

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new StagegateError('NOT_FOUND', 'no such route');
    } catch (err) {
      const coded = isStagegateError(err)
        ? err
        : (err as { status?: number }).status === 405
          ? new StagegateError('METHOD_NOT_ALLOWED', 'method not allowed')
          : undefined;
      if (coded) {
        ctx.status = coded.status;
        ctx.body = coded.toJSON();
      } else {
        // Not a coded error: a bug or an unexpected failure. Log it; show nothing of it.
        logger.error({ event: 'http.internal-error', err: { name: (err as Error)?.name, message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'internal error');
        ctx.status = 500;
        ctx.body = new StagegateError('INTERNAL', 'internal error').toJSON();
      }
    } finally {
      ctx.set('cache-control', 'no-store');
      logger.debug({ event: 'http.request', method: ctx.method, route: ctx._matchedRoute ?? null, status: ctx.status, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'request');
    }
  });

  const router = new Router();

  router.post('/v1/stages', async (ctx) => {
    const raw = await readJsonBody(ctx, deps.maxBodyBytes);
    // Count, per-item size and depth caps on evidence, before any schema work.
    if (raw && typeof raw === 'object' && 'evidence' in raw) checkEvidenceLimits((raw as { evidence: unknown }).evidence);
    const body = parse(openStageBodySchema, raw);
    const opened = await lifecycle.openStage({ identityToken: bearer(ctx), ...body });
    ctx.status = 201;
    ctx.body = opened;
  });

  router.post('/v1/stages/:id/heartbeat', async (ctx) => {
    const id = stageId(ctx);
    await readJsonBody(ctx, 1024, { optional: true });
    ctx.body = await lifecycle.heartbeat(id, bearer(ctx));
  });

  router.delete('/v1/stages/:id', async (ctx) => {
    const id = stageId(ctx);
    const body = parse(closeStageBodySchema, await readJsonBody(ctx, 1024, { optional: true }));
    ctx.body = await lifecycle.closeStage(id, bearer(ctx), body.exitCode ?? null);
  });

  router.get('/v1/stages/:id', async (ctx) => {
    ctx.body = await lifecycle.getStage(stageId(ctx), bearer(ctx));
  });

  const devProviders = [...deps.providers.values()].filter((p) => p.type === 'dev' && isDevChecker(p));
  if (devProviders.length > 0) {
    // Demo only: lets a newcomer see that a revoked demo credential is refused.
    router.post('/v1/dev/check', async (ctx) => {
      const { value } = parse(devCheckBodySchema, await readJsonBody(ctx, 8192));
      const results = devProviders.map((p) => (p as unknown as DevChecker).check(value) as { known: boolean });
      ctx.body = results.find((r) => r.known) ?? results[0];
    });
  }

  if (deps.demoIssuer) {
    const demo = deps.demoIssuer;
    router.get('/demo/jwks', (ctx) => {
      ctx.body = demo.jwks;
    });
    router.post('/demo/token', async (ctx) => {
      if (!isLoopback(ctx.ip)) throw new StagegateError('UNAUTHENTICATED', 'the demo issuer answers loopback callers only');
      const claims = (await readJsonBody(ctx, 8192, { optional: true })) ?? {};
      if (typeof claims !== 'object' || Array.isArray(claims)) throw new StagegateError('INVALID_REQUEST', 'claims must be a JSON object');
      ctx.type = 'application/jwt';
      ctx.body = await demo.mint(claims as Record<string, unknown>);
    });
  }

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const checks: Record<string, string> = {};
    try {
      await deps.store.counts();
      checks.store = 'ok';
    } catch {
      checks.store = 'unavailable';
    }
    await Promise.all(
      [...deps.providers.values()].map(async (p) => {
        try {
          await p.ready?.();
          checks[`provider:${p.name}`] = 'ok';
        } catch (err) {
          checks[`provider:${p.name}`] = isStagegateError(err) ? err.code : 'unavailable';
        }
      }),
    );
    const ok = Object.values(checks).every((v) => v === 'ok');
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ready' : 'not-ready', checks };
  });

  router.get('/metrics', async (ctx) => {
    const counts = await deps.store.counts();
    metrics.openStages.set(counts.openStages);
    metrics.reaperBacklog.set(counts.pendingRevocations);
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}

/**
 * `withStage`: the library form of `stagegate run`. Open a stage, keep it alive, hand the
 * credentials to a callback, and close (revoke) it in `finally`, whatever the callback did.
 */
import {
  createStagegateClient,
  type ClosedStage,
  type Credential,
  type OpenStageRequest,
  type OpenedStage,
  type StagegateClient,
} from './client';
import { StagegateError } from './errors';
import { startStageHeartbeat } from './heartbeat';
import { createIdentityTokenSource, identityTokenSourcesFromEnv } from './identity-token';

export interface WithStageOptions extends OpenStageRequest {
  /** A client to use; otherwise one is made from `brokerUrl` / `identityToken` / env. */
  readonly client?: StagegateClient;
  /** Broker URL; default `env.STAGEGATE_BROKER_URL`. */
  readonly brokerUrl?: string;
  /** Identity token or a function returning one; default: resolved from `env` (see identity-token.ts). */
  readonly identityToken?: string | (() => Promise<string>);
  /** Environment to read defaults from; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Called when a heartbeat brings refreshed credentials (already applied to `stage.credentials`). */
  readonly onCredentials?: (credentials: readonly Credential[]) => void;
  /** Called with the broker's close answer (which credentials were revoked and how). */
  readonly onClose?: (closed: ClosedStage) => void;
  /** Called when the broker says the stage is gone before the callback returned. */
  readonly onLost?: (error: StagegateError) => void;
}

/** What the callback of {@link withStage} gets. */
export interface StageSession {
  readonly stageId: string;
  readonly stage: string;
  readonly build: string;
  readonly rule: string;
  /** The open answer as received (holds the SECRET stage token and credential values). */
  readonly opened: OpenedStage;
  /** Current credentials; refreshed entries replace older ones of the same name. SECRET values. */
  readonly credentials: readonly Credential[];
  /** The credential called `name`, or a TypeError if the stage has none by that name. */
  credential(name: string): Credential;
  /** Aborted when the broker reports the stage gone (reaped, closed elsewhere). */
  readonly signal: AbortSignal;
}

/**
 * Open stage `options.stage`, run `fn` with its credentials while heartbeating, and close
 * the stage when `fn` settles (exit code 0 if it resolved, 1 if it threw). Returns what
 * `fn` returned; rethrows what it threw. A close failure after a successful `fn` is
 * thrown (the broker's heartbeat timeout still revokes); after a failing `fn`, `fn`'s
 * error wins.
 *
 * @example
 * ```ts
 * import { withStage } from 'stagegate';
 *
 * await withStage({ stage: 'publish', brokerUrl: 'https://stagegate.internal' }, async (stage) => {
 *   const npm = stage.credential('npm-token');
 *   await publish({ token: npm.values.token });
 * });
 * ```
 */
export async function withStage<T>(options: WithStageOptions, fn: (stage: StageSession) => Promise<T>): Promise<T> {
  const client = options.client ?? clientFromOptions(options);
  const opened = await client.openStage({
    stage: options.stage,
    phase: options.phase,
    evidence: options.evidence,
    artifacts: options.artifacts,
  });
  const current = new Map<string, Credential>(opened.credentials.map((c) => [c.name, c]));
  const lost = new AbortController();
  const beat = startStageHeartbeat({
    client,
    stageId: opened.stageId,
    stageToken: opened.stageToken,
    heartbeatSeconds: opened.heartbeatSeconds,
    onCredentials: (fresh) => {
      for (const c of fresh) current.set(c.name, c);
      options.onCredentials?.(fresh);
    },
    onLost: (err) => {
      lost.abort(err);
      options.onLost?.(err);
    },
  });
  const session: StageSession = {
    stageId: opened.stageId,
    stage: opened.stage,
    build: opened.build,
    rule: opened.rule,
    opened,
    get credentials() {
      return [...current.values()];
    },
    credential(name) {
      const c = current.get(name);
      if (!c) throw new TypeError(`stage ${opened.stage} has no credential named ${JSON.stringify(name)}`);
      return c;
    },
    signal: lost.signal,
  };

  let failed = false;
  try {
    return await fn(session);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await beat.stop();
    try {
      const closed = await client.closeStage(opened.stageId, opened.stageToken, { exitCode: failed ? 1 : 0 });
      options.onClose?.(closed);
    } catch (closeErr) {
      // fn's own error is the one the caller needs; a failed close is backstopped by the
      // broker reaping the stage once heartbeats stop.
      if (!failed) throw closeErr;
    }
  }
}

function clientFromOptions(options: WithStageOptions): StagegateClient {
  const env = options.env ?? process.env;
  const brokerUrl = options.brokerUrl ?? env.STAGEGATE_BROKER_URL;
  if (!brokerUrl) {
    throw new StagegateError('CONFIG_INVALID', 'no broker URL: pass brokerUrl or set STAGEGATE_BROKER_URL', {
      details: { tried: ['brokerUrl', 'STAGEGATE_BROKER_URL'] },
    });
  }
  const identityToken = options.identityToken ?? createIdentityTokenSource(identityTokenSourcesFromEnv(env));
  return createStagegateClient({ brokerUrl, identityToken });
}

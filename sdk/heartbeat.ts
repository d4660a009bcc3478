/**
 * The background heartbeat of an open stage. The broker reaps (and revokes) a stage that
 * misses its heartbeat window, so a silent runner loses its credentials; this loop is
 * what keeps a live one open, and it applies the credentials the broker refreshed.
 */
import type { Credential, HeartbeatResult, StagegateClient } from './client';
import { isStagegateError, type StagegateError } from './errors';

/** Shortest pause between heartbeats, in milliseconds. */
export const MIN_HEARTBEAT_INTERVAL_MS = 1000;

export interface StageHeartbeatOptions {
  readonly client: StagegateClient;
  readonly stageId: string;
  /** SECRET: the stage token. */
  readonly stageToken: string;
  /** From the open answer; the loop beats every `heartbeatSeconds / 3` (at least 1 s). */
  readonly heartbeatSeconds: number;
  /** Called with the credentials a heartbeat refreshed (replace them by `name`). */
  readonly onCredentials?: (credentials: readonly Credential[]) => void;
  /** Called after every successful beat. */
  readonly onBeat?: (result: HeartbeatResult) => void;
  /** A beat failed but the stage may still be open (network, 5xx); the loop goes on. */
  readonly onError?: (error: StagegateError | Error) => void;
  /** The broker says the stage is gone (closed, reaped, unknown token); the loop stops. */
  readonly onLost?: (error: StagegateError) => void;
}

export interface StageHeartbeat {
  /** Stop beating; resolves once an in-flight beat has settled. Idempotent. */
  stop(): Promise<void>;
}

/** Heartbeat interval for a stage, in milliseconds: a third of the window, at least 1 s. */
export function heartbeatIntervalMs(heartbeatSeconds: number): number {
  return Math.max(MIN_HEARTBEAT_INTERVAL_MS, Math.floor((heartbeatSeconds * 1000) / 3));
}

/**
 * Start heartbeating an open stage in the background.
 *
 * @example
 * ```ts
 * const beat = startStageHeartbeat({
 *   client, stageId: opened.stageId, stageToken: opened.stageToken,
 *   heartbeatSeconds: opened.heartbeatSeconds,
 *   onCredentials: (fresh) => console.error(`refreshed ${fresh.map((c) => c.name).join(', ')}`),
 * });
 * // … run the stage …
 * await beat.stop();
 * ```
 */
export function startStageHeartbeat(options: StageHeartbeatOptions): StageHeartbeat {
  let intervalMs = heartbeatIntervalMs(options.heartbeatSeconds);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = beat().finally(() => {
        inFlight = undefined;
        schedule();
      });
    }, intervalMs);
  };

  const beat = async () => {
    try {
      const result = await options.client.heartbeat(options.stageId, options.stageToken);
      if (stopped) return;
      intervalMs = heartbeatIntervalMs(result.heartbeatSeconds);
      if (result.credentials.length > 0) options.onCredentials?.(result.credentials);
      options.onBeat?.(result);
    } catch (err) {
      if (stopped) return;
      if (isStagegateError(err) && isStageGone(err)) {
        stopped = true;
        options.onLost?.(err);
        return;
      }
      options.onError?.(err instanceof Error ? err : new Error('heartbeat failed'));
    }
  };

  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (inFlight) await inFlight;
    },
  };
}

function isStageGone(err: StagegateError): boolean {
  return err.code === 'STAGE_CLOSED' || err.code === 'STAGE_NOT_FOUND' || err.code === 'UNAUTHENTICATED';
}

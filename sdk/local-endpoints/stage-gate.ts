/**
 * The gate every local endpoint passes before it serves a credential: the broker must
 * say the stage is `open` and the build's install phase is not. The answer is cached for
 * at most {@link STAGE_GATE_CACHE_MS} so a busy SDK does not hammer the broker, and one
 * broker request is shared by concurrent callers.
 *
 * Fail closed: if the broker cannot be asked, nothing is served.
 */
import type { StageState } from '../client';

/** Longest time a broker answer is trusted, in milliseconds. */
export const STAGE_GATE_CACHE_MS = 1000;

export type StageGateDecision =
  | { readonly open: true }
  | { readonly open: false; readonly code: 'StageNotOpen' | 'InstallPhaseOpen' | 'BrokerUnavailable' | 'StageClosed'; readonly reason: string };

export interface StageGate {
  /** May a credential be served now? */
  check(): Promise<StageGateDecision>;
  /** The stage is being closed locally: refuse from now on without asking. */
  markClosed(): void;
}

export interface StageGateOptions {
  /** Reads the stage's state (the SDK client's `getStage`, bound to the stage id and token). */
  readonly getStage: () => Promise<Pick<StageState, 'state' | 'installPhaseOpen'>>;
  /** Cache lifetime in milliseconds; default and maximum {@link STAGE_GATE_CACHE_MS}. */
  readonly cacheMs?: number;
  /** Clock in epoch milliseconds, for tests. */
  readonly now?: () => number;
}

/**
 * Create the gate for one stage.
 *
 * @example
 * ```ts
 * const gate = createStageGate({ getStage: () => client.getStage(opened.stageId, opened.stageToken) });
 * if (!(await gate.check()).open) refuse();
 * ```
 */
export function createStageGate(options: StageGateOptions): StageGate {
  const cacheMs = Math.min(options.cacheMs ?? STAGE_GATE_CACHE_MS, STAGE_GATE_CACHE_MS);
  const now = options.now ?? Date.now;
  let closed = false;
  let cached: { at: number; decision: StageGateDecision } | undefined;
  let pending: Promise<StageGateDecision> | undefined;

  const ask = async (): Promise<StageGateDecision> => {
    try {
      const s = await options.getStage();
      if (s.state !== 'open') return { open: false, code: 'StageNotOpen', reason: `stage is ${s.state}` };
      if (s.installPhaseOpen) return { open: false, code: 'InstallPhaseOpen', reason: 'the build install phase is open' };
      return { open: true };
    } catch {
      return { open: false, code: 'BrokerUnavailable', reason: 'the broker could not confirm the stage is open' };
    }
  };

  return {
    async check() {
      if (closed) return { open: false, code: 'StageClosed', reason: 'stage closed' };
      const t = now();
      if (cached && t - cached.at < cacheMs && t >= cached.at) return cached.decision;
      if (!pending) {
        pending = ask().then((decision) => {
          // Only a positive answer is worth caching; a refusal is re-asked next time so a
          // broker blip heals at once.
          cached = decision.open ? { at: now(), decision } : undefined;
          pending = undefined;
          return decision;
        });
      }
      const decision = await pending;
      return closed ? { open: false, code: 'StageClosed', reason: 'stage closed' } : decision;
    },
    markClosed() {
      closed = true;
      cached = undefined;
    },
  };
}

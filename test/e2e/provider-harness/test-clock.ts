/**
 * One clock for the broker, its providers and the three cloud fakes, so a test can move
 * "now" forward (past a GCP `refreshAt`, past an AWS deny's garbage-collection time)
 * without waiting. It runs with the wall clock plus an offset; `advance` moves the
 * offset and tells every listener (the fakes) to move by the same amount.
 */
export interface TestClock {
  /** Unix milliseconds: wall clock + offset. */
  now(): number;
  /** Move the clock forward by `ms` milliseconds (and every listener with it). */
  advance(ms: number): void;
  /** Called with the new time and the step on every `advance` (fakes keep in step). */
  onAdvance(listener: (now: number, stepMs: number) => void): void;
}

export function createTestClock(): TestClock {
  let offset = 0;
  const listeners: Array<(now: number, stepMs: number) => void> = [];
  const now = () => Date.now() + offset;
  return {
    now,
    advance(ms) {
      if (!(ms >= 0)) throw new TypeError('the test clock only moves forward');
      offset += ms;
      for (const l of listeners) l(now(), ms);
    },
    onAdvance(listener) {
      listeners.push(listener);
    },
  };
}

/**
 * Serialise work per key and coalesce what piles up while a run is in flight.
 *
 * Used for the deny list: each role's inline policy is read-modify-written, so two
 * revocations on one role must never interleave (the second write would drop the
 * first one's deny). Instead of one GetRolePolicy/PutRolePolicy per revocation, every
 * revocation that arrives while a write is running is folded into the next write: 200
 * concurrent revocations cost a handful of IAM calls, which also keeps us far from
 * IAM's write throttling.
 *
 * This serialises within ONE broker process. Several replicas writing the same role
 * need a store-level lock (PostgreSQL advisory lock per role) — a later step; until
 * then each write re-reads the document and unions in this process's recent denies.
 */

export interface KeyedBatchQueue<I, R> {
  /** Queue `item` for `key`; resolves with the result of the run that handled it. */
  submit(key: string, item: I): Promise<R>;
  /** Resolves when nothing is queued or running. */
  idle(): Promise<void>;
}

/**
 * `run(key, items)` handles a batch and returns one outcome per item (same order): a
 * value, or an Error for items that failed on their own. A thrown error fails the
 * whole batch.
 */
export function createKeyedBatchQueue<I, R>(run: (key: string, items: I[]) => Promise<Array<R | Error>>): KeyedBatchQueue<I, R> {
  interface Waiter {
    item: I;
    resolve: (r: R) => void;
    reject: (e: unknown) => void;
  }
  const pending = new Map<string, Waiter[]>();
  const running = new Map<string, Promise<void>>();

  const drain = async (key: string): Promise<void> => {
    for (;;) {
      const batch = pending.get(key);
      if (!batch || batch.length === 0) break;
      pending.delete(key);
      try {
        const outcomes = await run(
          key,
          batch.map((w) => w.item),
        );
        batch.forEach((w, i) => {
          const o = outcomes[i];
          if (o instanceof Error) w.reject(o);
          else w.resolve(o as R);
        });
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    running.delete(key);
  };

  return {
    submit(key, item) {
      return new Promise<R>((resolve, reject) => {
        const list = pending.get(key) ?? [];
        list.push({ item, resolve, reject });
        pending.set(key, list);
        if (!running.has(key)) running.set(key, drain(key));
      });
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running.values()]);
    },
  };
}

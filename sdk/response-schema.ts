/**
 * A tiny structural validator for broker responses, with zod's shape (`object`, `string`,
 * `enum`, …, `safeParse`, inferred types) but none of its load time: zod costs about
 * 50 ms to require, a fifth of the `stagegate run -- true` budget (≤ 250 ms over `true`).
 * The broker validates its inputs with zod; the SDK only has to check what it reads.
 *
 * Like zod objects, unknown keys are dropped, so a newer broker's extra fields pass.
 * Issues name paths only, never received values (bodies hold credentials).
 */

export interface Schema<T> {
  /** Returns the checked value, or pushes issues (paths) and returns undefined. */
  check(value: unknown, path: string, issues: string[]): T | undefined;
  readonly optional: boolean;
}

/** The type a schema accepts. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Result of {@link safeParse}. */
export type ParseResult<T> = { success: true; data: T } | { success: false; issues: string[] };

function schema<T>(check: Schema<T>['check'], optional = false): Schema<T> {
  return { check, optional };
}

/** A string; `min` is the least length (default 0). */
export function string(min = 0): Schema<string> {
  return schema((v, p, issues) => (typeof v === 'string' && v.length >= min ? v : void issues.push(p)));
}

/** A finite number, greater than 0 if `positive`. */
export function number(options: { positive?: boolean } = {}): Schema<number> {
  return schema((v, p, issues) =>
    typeof v === 'number' && Number.isFinite(v) && (!options.positive || v > 0) ? v : void issues.push(p),
  );
}

export function boolean(): Schema<boolean> {
  return schema((v, p, issues) => (typeof v === 'boolean' ? v : void issues.push(p)));
}

/** One of the given strings. */
export function oneOf<const E extends readonly string[]>(values: E): Schema<E[number]> {
  return schema((v, p, issues) => (typeof v === 'string' && values.includes(v) ? (v as E[number]) : void issues.push(p)));
}

/** The value may be absent (or null, which is read as absent). */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> & { readonly optional: true } {
  return schema<T | undefined>((v, p, issues) => (v === undefined || v === null ? undefined : inner.check(v, p, issues)), true) as Schema<
    T | undefined
  > & { readonly optional: true };
}

export function array<T>(item: Schema<T>): Schema<T[]> {
  return schema((v, p, issues) => {
    if (!Array.isArray(v)) return void issues.push(p);
    const before = issues.length;
    const out = v.map((x, i) => item.check(x, p ? `${p}.${i}` : String(i), issues));
    return issues.length === before ? (out as T[]) : undefined;
  });
}

/** An object whose values are all strings. */
export function stringRecord(): Schema<Record<string, string>> {
  return schema((v, p, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push(p);
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string') return void issues.push(p ? `${p}.${k}` : k);
      out[k] = x;
    }
    return out;
  });
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? K : never }[keyof S];
/** The object type of a shape: optional schemas become optional keys. */
export type ObjectOf<S extends Shape> = { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Infer<S[K]>;
};

/** An object with these keys; others are dropped. */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  return schema((v, p, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push(p || '(root)');
    const before = issues.length;
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(shape)) {
      const x = s.check((v as Record<string, unknown>)[k], p ? `${p}.${k}` : k, issues);
      if (x !== undefined) out[k] = x;
    }
    return issues.length === before ? (out as ObjectOf<S>) : undefined;
  });
}

/**
 * Check a value against a schema.
 *
 * @example
 * ```ts
 * const r = safeParse(object({ stageId: string(1) }), body);
 * if (!r.success) console.error(r.issues); // ['stageId']
 * ```
 */
export function safeParse<T>(s: Schema<T>, value: unknown): ParseResult<T> {
  const issues: string[] = [];
  const data = s.check(value, '', issues);
  return issues.length === 0 ? { success: true, data: data as T } : { success: false, issues };
}

/**
 * The per-role deny list, as pure functions over the inline policy document that holds
 * it. No I/O: the provider reads the document, calls these, and writes the result.
 *
 * Shape (compact JSON, one statement per expiry bucket):
 * ```json
 * {"Version":"2012-10-17","Statement":[{"Sid":"SgGc1767225600","Effect":"Deny","Action":"*",
 *   "Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":["sg-stage1","sg-stage2"]}}}]}
 * ```
 * - Why SourceIdentity: the holder of the credentials cannot change it, and it is carried
 *   into every role assumed from the session (role chaining), so one deny covers the
 *   whole chain. A list of values under one `StringEquals` key matches any of them.
 * - Why the Sid encodes a time: `SgGc<epoch seconds>` is the moment after which every
 *   credential denied in that statement has expired by itself (expiry + skew +
 *   propagation margins). Garbage collection is then "drop statements whose time has
 *   passed" and needs no state besides the document itself, which survives restarts and
 *   is shared by all broker replicas.
 * - Why buckets: a role's inline policies share 10,240 characters. Grouping ids by
 *   expiry bucket costs ~110 characters per statement instead of per id, and under
 *   pressure an early bucket is merged into a later one (always safe: it only keeps a
 *   deny longer than needed).
 * Statements this module did not write (another Sid) are kept verbatim.
 */

/** Sid prefix of the statements stagegate owns. IAM allows only `[A-Za-z0-9]` in a Sid. */
export const DENY_SID_PREFIX = 'SgGc';
const SID_PATTERN = /^SgGc(\d{1,12})$/;
const CONDITION_KEY = 'aws:SourceIdentity';

export interface DenyList {
  /** Expiry bucket (epoch seconds after which the ids may be dropped) → denied source identities. */
  readonly buckets: ReadonlyMap<number, ReadonlySet<string>>;
  /** Statements not written by stagegate, kept as they were. */
  readonly foreign: readonly unknown[];
}

export const EMPTY_DENY_LIST: DenyList = { buckets: new Map(), foreign: [] };

/** The deny list could not be read: the document is not a policy stagegate can safely rewrite. */
export class DenyListFormatError extends Error {
  override readonly name = 'DenyListFormatError';
}

function ownedValues(statement: Record<string, unknown>): string[] | undefined {
  if (statement.Effect !== 'Deny' || statement.Action !== '*' || statement.Resource !== '*') return undefined;
  const condition = statement.Condition as Record<string, Record<string, unknown>> | undefined;
  const keys = condition ? Object.keys(condition) : [];
  if (keys.length !== 1 || keys[0] !== 'StringEquals') return undefined;
  const inner = condition!.StringEquals!;
  if (Object.keys(inner).length !== 1) return undefined;
  const values = inner[CONDITION_KEY];
  if (typeof values === 'string') return [values];
  if (Array.isArray(values) && values.every((v) => typeof v === 'string')) return values as string[];
  return undefined;
}

/**
 * Parse the policy document (the decoded JSON text; `undefined` when the role has no
 * such policy yet). Throws {@link DenyListFormatError} if it is not a JSON policy, so
 * the caller never overwrites a document it does not understand.
 */
export function parseDenyList(document: string | undefined): DenyList {
  if (document === undefined || document.trim() === '') return EMPTY_DENY_LIST;
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch {
    throw new DenyListFormatError('deny policy is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new DenyListFormatError('deny policy is not a JSON object');
  const raw = (parsed as { Statement?: unknown }).Statement;
  const statements = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const buckets = new Map<number, Set<string>>();
  const foreign: unknown[] = [];
  for (const s of statements) {
    if (!s || typeof s !== 'object') throw new DenyListFormatError('deny policy statement is not an object');
    const st = s as Record<string, unknown>;
    const sid = typeof st.Sid === 'string' ? SID_PATTERN.exec(st.Sid) : null;
    const values = sid ? ownedValues(st) : undefined;
    if (!sid || !values) {
      foreign.push(s);
      continue;
    }
    const bucket = Number(sid[1]);
    const set = buckets.get(bucket) ?? new Set<string>();
    for (const v of values) set.add(v);
    buckets.set(bucket, set);
  }
  return { buckets, foreign };
}

/** The bucket a deny belongs to: `gcAfter` rounded UP to the bucket width (never earlier). */
export function bucketFor(gcAfterEpochSeconds: number, bucketSeconds: number): number {
  return Math.ceil(gcAfterEpochSeconds / bucketSeconds) * bucketSeconds;
}

/** The bucket currently holding `sourceIdentity`, if any. */
export function findDeny(list: DenyList, sourceIdentity: string): number | undefined {
  for (const [bucket, ids] of list.buckets) if (ids.has(sourceIdentity)) return bucket;
  return undefined;
}

/**
 * Add a deny. Idempotent: an id already present stays where it is if its bucket is at
 * least as late, and moves to the later bucket otherwise (a deny is never shortened).
 */
export function addDeny(list: DenyList, sourceIdentity: string, bucket: number): DenyList {
  const current = findDeny(list, sourceIdentity);
  if (current !== undefined && current >= bucket) return list;
  const buckets = new Map<number, Set<string>>([...list.buckets].map(([b, ids]) => [b, new Set(ids)]));
  if (current !== undefined) buckets.get(current)!.delete(sourceIdentity);
  if (current !== undefined && buckets.get(current)!.size === 0) buckets.delete(current);
  const set = buckets.get(bucket) ?? new Set<string>();
  set.add(sourceIdentity);
  buckets.set(bucket, set);
  return { buckets, foreign: list.foreign };
}

/** Drop every bucket whose time is at or before `nowEpochSeconds`: their credentials have expired. */
export function collectGarbage(list: DenyList, nowEpochSeconds: number): DenyList {
  const buckets = new Map([...list.buckets].filter(([b]) => b > nowEpochSeconds));
  return buckets.size === list.buckets.size ? list : { buckets, foreign: list.foreign };
}

/** Union of two lists (an id in both keeps the later bucket). Used to re-add our own recent writes on a stale read. */
export function mergeDenyLists(base: DenyList, extra: DenyList): DenyList {
  let out = base;
  for (const [bucket, ids] of extra.buckets) for (const id of ids) out = addDeny(out, id, bucket);
  return out;
}

/** Number of denied ids. */
export function countDenies(list: DenyList): number {
  let n = 0;
  for (const ids of list.buckets.values()) n += ids.size;
  return n;
}

/** Compact JSON of the policy, or `undefined` when nothing is left (delete the policy then). */
export function renderDenyList(list: DenyList): string | undefined {
  if (list.buckets.size === 0 && list.foreign.length === 0) return undefined;
  const owned = [...list.buckets]
    .sort(([a], [b]) => a - b)
    .map(([bucket, ids]) => ({
      Sid: `${DENY_SID_PREFIX}${bucket}`,
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { StringEquals: { [CONDITION_KEY]: [...ids].sort() } },
    }));
  return JSON.stringify({ Version: '2012-10-17', Statement: [...list.foreign, ...owned] });
}

/** Size as IAM counts it: characters without whitespace (IAM ignores whitespace in policy size). */
export function policySize(document: string | undefined): number {
  return document === undefined ? 0 : document.replace(/\s/g, '').length;
}

/**
 * Make the list fit `maxChars` by merging the earliest bucket into the next one, as often
 * as needed. Never drops an id. Returns `undefined` if even a single bucket is too big.
 */
export function fitDenyList(list: DenyList, maxChars: number): DenyList | undefined {
  let out = list;
  while (policySize(renderDenyList(out)) > maxChars) {
    const order = [...out.buckets.keys()].sort((a, b) => a - b);
    if (order.length < 2) return undefined;
    const [first, second] = order as [number, number];
    const buckets = new Map<number, Set<string>>([...out.buckets].map(([b, ids]) => [b, new Set(ids)]));
    for (const id of buckets.get(first)!) buckets.get(second)!.add(id);
    buckets.delete(first);
    out = { buckets, foreign: out.foreign };
  }
  return out;
}

/**
 * Pure derivation of what STS sees of a stage: SourceIdentity, RoleSessionName and
 * session tags. Stage and build names come from policy and identity tokens and may hold
 * any characters at any length; STS rejects a whole AssumeRole for one bad character,
 * so everything here is sanitised to STS's charsets and truncated, with a short hash
 * of the original kept whenever anything was changed (two different names never
 * collapse into the same label).
 */
import { createHash } from 'node:crypto';
import type { StageContext } from '../provider';

/** STS charset of RoleSessionName and SourceIdentity: `[\w+=,.@-]`, 2–64 characters. */
export const STS_NAME_PATTERN = /^[\w+=,.@-]{2,64}$/;
/** Session tag key charset (1–128 characters). */
export const SESSION_TAG_KEY_PATTERN = /^[\p{L}\p{Z}\p{N}_.:/=+@-]+$/u;
/** STS limit on session tags per AssumeRole. */
export const MAX_SESSION_TAGS = 50;
export const MAX_TAG_KEY_CHARS = 128;
export const MAX_TAG_VALUE_CHARS = 256;
/** Prefix of the tags stagegate sets itself; reserved in config and grants so nobody can spoof them. */
export const STAGEGATE_TAG_PREFIX = 'stagegate:';
/** The tags stagegate always sets (see {@link deriveSessionTags}). */
export const STAGEGATE_TAG_KEYS = ['stagegate:build', 'stagegate:stage', 'stagegate:rule', 'stagegate:stage-id'] as const;
export const STAGEGATE_TAG_COUNT = STAGEGATE_TAG_KEYS.length;

const SOURCE_IDENTITY_PREFIX = 'sg-';
const HASH_CHARS = 10;

const shortHash = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex').slice(0, HASH_CHARS);

/**
 * Make `value` a valid STS name fragment of at most `max` characters: characters outside
 * `[\w+=,.@-]` become `_`; if anything changed (or it was too long) a `-` and a 10-hex
 * hash of the original is appended so distinct inputs stay distinct.
 */
export function toStsNameFragment(value: string, max: number): string {
  if (max < HASH_CHARS + 2) throw new TypeError(`toStsNameFragment: max ${max} leaves no room for the hash`);
  const cleaned = value.replace(/[^\w+=,.@-]/g, '_');
  if (cleaned === value && cleaned.length <= max && cleaned.length > 0) return cleaned;
  const keep = max - HASH_CHARS - 1;
  return `${cleaned.slice(0, keep)}-${shortHash(value)}`.replace(/^-/, 'x-');
}

/**
 * SourceIdentity of a stage: `sg-<stageId>` (≤ 43 characters for a stage id of
 * `[a-z0-9-]{1,40}`). It holds only the stage id, on purpose: it is the unit the deny
 * list stores, and a role's inline policies share 10,240 characters, so every character
 * here costs deny-list capacity. Stage, build and rule names go to the session name and
 * tags, where CloudTrail shows them too.
 */
export function deriveSourceIdentity(stageId: string): string {
  const fragment = /^[a-z0-9-]{1,40}$/.test(stageId) ? stageId : toStsNameFragment(stageId, 40);
  return `${SOURCE_IDENTITY_PREFIX}${fragment}`;
}

/**
 * RoleSessionName of a stage: `<stage>.<stageId>` within 64 characters. The stage id
 * keeps it unique per stage; the stage name (sanitised, truncated to what is left,
 * hashed if changed) makes CloudTrail's `assumed-role/ROLE/SESSION` readable.
 */
export function deriveSessionName(stage: string, stageId: string): string {
  const id = /^[a-z0-9-]{1,40}$/.test(stageId) ? stageId : toStsNameFragment(stageId, 40);
  const room = 64 - id.length - 1;
  // With a 40-char id there are 23 characters for the stage: enough for a hash plus a prefix.
  const name = toStsNameFragment(stage, Math.max(room, HASH_CHARS + 2));
  return `${name}.${id}`.slice(0, 64);
}

/**
 * Sanitise a tag value to STS's charset (`[\p{L}\p{Z}\p{N}_.:/=+@-]`, others become `_`)
 * and cut it to 256 UTF-16 units without splitting a surrogate pair.
 */
export function sanitizeTagValue(value: string, max = MAX_TAG_VALUE_CHARS): string {
  const cleaned = value.replace(/[^\p{L}\p{Z}\p{N}_.:/=+@-]/gu, '_');
  if (cleaned.length <= max) return cleaned;
  let cut = cleaned.slice(0, max);
  // A high surrogate left alone at the end is not a character STS accepts.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut;
}

/** A claim value as a tag value: strings, numbers and booleans as text, arrays joined by a space (`,` is not in the tag charset); objects are skipped. */
function claimToText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const parts = value.filter((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean');
    return parts.length > 0 ? parts.map(String).join(' ') : undefined;
  }
  return undefined;
}

export interface SessionTag {
  readonly Key: string;
  readonly Value: string;
}

/**
 * Session tags for a stage: the four `stagegate:*` tags (build, stage, rule, stage id),
 * then the configured claim → tag mapping, then the grant's static tags. Values are
 * sanitised and truncated; a claim that is missing or not representable is skipped.
 * Keys are unique case-insensitively (STS's rule): the first writer wins, and the
 * `stagegate:` prefix is reserved in config so stagegate's own tags cannot be spoofed.
 */
export function deriveSessionTags(
  ctx: Pick<StageContext, 'build' | 'stage' | 'rule' | 'stageId' | 'claims'>,
  claimTags: Readonly<Record<string, string>>,
  staticTags: Readonly<Record<string, string>>,
): SessionTag[] {
  const tags: SessionTag[] = [];
  const seen = new Set<string>();
  const add = (key: string, value: string): void => {
    const lower = key.toLowerCase();
    if (seen.has(lower)) return;
    seen.add(lower);
    tags.push({ Key: key, Value: sanitizeTagValue(value) });
  };
  add('stagegate:build', ctx.build);
  add('stagegate:stage', ctx.stage);
  add('stagegate:rule', ctx.rule);
  add('stagegate:stage-id', ctx.stageId);
  for (const [claim, key] of Object.entries(claimTags)) {
    const text = claimToText(ctx.claims[claim]);
    if (text !== undefined) add(key, text);
  }
  for (const [key, value] of Object.entries(staticTags)) add(key, value);
  return tags;
}

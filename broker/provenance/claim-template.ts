/**
 * `{claim}` placeholders in policy values, filled from the verified identity token's
 * claims. `{{` and `}}` stand for literal braces. Only top-level claims whose value is a
 * string, number or boolean can fill a placeholder: a missing or structured claim makes
 * the whole value unavailable, and the caller fails closed (`claim-missing`).
 */

const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Part = { readonly literal: string } | { readonly claim: string };

/** A compiled template: the literal and placeholder parts of a policy value. */
export interface ClaimTemplate {
  /** The policy text as written. */
  readonly source: string;
  /** Claim names the template needs (empty for a plain literal). */
  readonly claims: readonly string[];
  readonly parts: readonly Part[];
}

/** Result of filling a template: the value, or the first claim that was missing. */
export type FilledTemplate = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly missingClaim: string };

/**
 * Parse a policy value once at config load.
 * @throws TypeError naming the problem (the config loader reports it with its path).
 */
export function compileClaimTemplate(source: string): ClaimTemplate {
  const parts: Part[] = [];
  let literal = '';
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '{' && source[i + 1] === '{') {
      literal += '{';
      i++;
    } else if (ch === '}' && source[i + 1] === '}') {
      literal += '}';
      i++;
    } else if (ch === '{') {
      const end = source.indexOf('}', i + 1);
      if (end < 0) throw new TypeError('unclosed "{" placeholder (write "{{" for a literal brace)');
      const name = source.slice(i + 1, end);
      if (!CLAIM_NAME.test(name)) throw new TypeError('a placeholder must name one top-level claim, e.g. "{sha}"');
      if (literal) parts.push({ literal });
      literal = '';
      parts.push({ claim: name });
      i = end;
    } else if (ch === '}') {
      throw new TypeError('unmatched "}" (write "}}" for a literal brace)');
    } else {
      literal += ch;
    }
  }
  if (literal) parts.push({ literal });
  const claims = parts.flatMap((p) => ('claim' in p ? [p.claim] : []));
  return { source, claims, parts };
}

/**
 * Fill a template from token claims. `escape` transforms each claim value before it is
 * inserted (used to regex-escape values going into an identity pattern).
 */
export function fillClaimTemplate(
  template: ClaimTemplate,
  claims: Readonly<Record<string, unknown>>,
  escape: (value: string) => string = (v) => v,
): FilledTemplate {
  let value = '';
  for (const part of template.parts) {
    if ('literal' in part) {
      value += part.literal;
      continue;
    }
    const claim = Object.prototype.hasOwnProperty.call(claims, part.claim) ? claims[part.claim] : undefined;
    // Only scalar claims: an object or array would stringify to something no policy
    // author meant ("[object Object]"), and an empty string would widen a match.
    if (typeof claim === 'number' || typeof claim === 'boolean' || (typeof claim === 'string' && claim !== '')) {
      value += escape(String(claim));
    } else {
      return { ok: false, missingClaim: part.claim };
    }
  }
  return { ok: true, value };
}

/** Escape a string for literal use inside a RegExp source. */
export function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

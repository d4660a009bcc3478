/**
 * Claim patterns in policy. A string is matched whole (anchored): `*` matches any run
 * of characters except `/`, `**` any run including `/`, `?` one character other than
 * `/`; everything else is literal. Booleans and numbers match exactly. Compiled once at
 * config load, never per request.
 */
export type ClaimMatcher = (value: unknown) => boolean;

export function compileClaimPattern(pattern: string | number | boolean): ClaimMatcher {
  if (typeof pattern !== 'string') return (value) => value === pattern;
  if (!/[*?]/.test(pattern)) return (value) => value === pattern;
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const re = new RegExp(`^${source}$`, 's');
  return (value) => typeof value === 'string' && re.test(value);
}

/** Assert that none of the secret values occurs anywhere in a text (logs, a store file, an error body). */
export function findLeaks(haystack: string, secrets: readonly string[]): string[] {
  return secrets.filter((s) => s.length >= 8 && haystack.includes(s));
}

export function expectNoLeaks(haystack: string, secrets: readonly string[], where: string): void {
  const leaks = findLeaks(haystack, secrets);
  if (leaks.length > 0) {
    throw new Error(`${leaks.length} secret value(s) found in ${where} (first starts with ${leaks[0]!.slice(0, 4)}…)`);
  }
  if (secrets.filter((s) => s.length >= 8).length === 0) throw new Error('expectNoLeaks was given no secrets to look for');
}

/** Every credential value in an open-stage response, and the stage token. */
export function secretsOf(opened: { stageToken?: string; credentials?: Array<{ values: Record<string, string> }> }): string[] {
  const out: string[] = [];
  if (opened.stageToken) out.push(opened.stageToken);
  for (const c of opened.credentials ?? []) out.push(...Object.values(c.values));
  return out;
}

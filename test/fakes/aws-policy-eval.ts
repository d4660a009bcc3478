/**
 * A small, honest IAM policy engine for the AWS fake: validates policy grammar the way
 * IAM rejects documents (MalformedPolicyDocument), and evaluates statements for real —
 * Action/NotAction wildcards, Resource wildcards, and the condition operators stagegate
 * and its tests use. Unknown operators are rejected at write time rather than silently
 * ignored, so a test can never pass on a condition the fake does not understand.
 */

export type ConditionContext = Readonly<Record<string, string | undefined>>;

export interface EvaluationRequest {
  /** e.g. `sts:GetAccessKeyInfo`. */
  readonly action: string;
  readonly resource: string;
  readonly context: ConditionContext;
}

type Statement = {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
};

const SUPPORTED_OPERATORS = new Set([
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'ForAnyValue:StringEquals',
  'ForAnyValue:StringLike',
  'DateLessThan',
  'DateGreaterThan',
]);

/** Why IAM would refuse the document, or `undefined` if it is valid. */
export function validatePolicyDocument(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'Syntax errors in policy.';
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 'Syntax errors in policy.';
  const d = doc as Record<string, unknown>;
  if (d.Version !== undefined && d.Version !== '2012-10-17' && d.Version !== '2008-10-17') return 'The policy failed legacy parsing';
  for (const k of Object.keys(d)) if (!['Version', 'Id', 'Statement'].includes(k)) return 'Syntax errors in policy.';
  const raw = d.Statement;
  if (raw === undefined) return 'Syntax errors in policy.';
  const statements = Array.isArray(raw) ? raw : [raw];
  if (statements.length === 0) return 'Syntax errors in policy.';
  const sids = new Set<string>();
  for (const s of statements) {
    if (!s || typeof s !== 'object' || Array.isArray(s)) return 'Syntax errors in policy.';
    const st = s as Record<string, unknown>;
    for (const k of Object.keys(st)) {
      if (!['Sid', 'Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition', 'Principal', 'NotPrincipal'].includes(k)) {
        return 'Syntax errors in policy.';
      }
    }
    if (st.Sid !== undefined) {
      if (typeof st.Sid !== 'string' || !/^[A-Za-z0-9]*$/.test(st.Sid)) return 'Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*';
      if (st.Sid !== '' && sids.has(st.Sid)) return 'Statement IDs (SID) in a single policy must be unique.';
      sids.add(st.Sid);
    }
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny') return 'Syntax errors in policy.';
    if ((st.Action === undefined) === (st.NotAction === undefined)) return 'Policy statement must contain actions.';
    if ((st.Resource === undefined) === (st.NotResource === undefined)) return 'Policy statement must contain resources.';
    for (const field of [st.Action, st.NotAction, st.Resource, st.NotResource]) {
      if (field === undefined) continue;
      const list = Array.isArray(field) ? field : [field];
      if (list.length === 0 || !list.every((v) => typeof v === 'string' && v.length > 0)) return 'Syntax errors in policy.';
    }
    if (st.Condition !== undefined) {
      if (!st.Condition || typeof st.Condition !== 'object' || Array.isArray(st.Condition)) return 'Syntax errors in policy.';
      for (const [op, block] of Object.entries(st.Condition as Record<string, unknown>)) {
        if (!SUPPORTED_OPERATORS.has(op)) return `Invalid Condition type : ${op}.`;
        if (!block || typeof block !== 'object' || Array.isArray(block)) return 'Syntax errors in policy.';
        for (const values of Object.values(block as Record<string, unknown>)) {
          const list = Array.isArray(values) ? values : [values];
          if (!list.every((v) => typeof v === 'string')) return 'Syntax errors in policy.';
        }
      }
    }
  }
  return undefined;
}

/** IAM wildcard match (`*` any run, `?` one char), case-insensitive for actions. */
function wildcard(pattern: string, value: string, ignoreCase: boolean): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, ignoreCase ? 'is' : 's');
  return re.test(value);
}

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function conditionHolds(op: string, key: string, expected: string[], ctx: ConditionContext): boolean {
  const actual = ctx[key];
  const negated = op === 'StringNotEquals' || op === 'StringNotLike';
  // IAM: a missing key makes a positive operator false and a negated one true.
  if (actual === undefined) return negated;
  switch (op) {
    case 'StringEquals':
    case 'ForAnyValue:StringEquals':
      return expected.includes(actual);
    case 'StringEqualsIgnoreCase':
      return expected.some((e) => e.toLowerCase() === actual.toLowerCase());
    case 'StringNotEquals':
      return !expected.includes(actual);
    case 'StringLike':
    case 'ForAnyValue:StringLike':
      return expected.some((e) => wildcard(e, actual, false));
    case 'StringNotLike':
      return !expected.some((e) => wildcard(e, actual, false));
    case 'DateLessThan':
      return expected.some((e) => Date.parse(actual) < Date.parse(e));
    case 'DateGreaterThan':
      return expected.some((e) => Date.parse(actual) > Date.parse(e));
    default:
      throw new Error(`fake IAM: unsupported condition operator ${op}`);
  }
}

function statementMatches(st: Statement, req: EvaluationRequest): boolean {
  const actionHit = st.Action !== undefined
    ? asList(st.Action).some((a) => wildcard(a, req.action, true))
    : !asList(st.NotAction).some((a) => wildcard(a, req.action, true));
  if (!actionHit) return false;
  const resourceHit = st.Resource !== undefined
    ? asList(st.Resource).some((r) => wildcard(r, req.resource, false))
    : !asList(st.NotResource).some((r) => wildcard(r, req.resource, false));
  if (!resourceHit) return false;
  for (const [op, block] of Object.entries(st.Condition ?? {})) {
    // All keys of all operators must hold (AND); values within one key are OR'ed.
    for (const [key, values] of Object.entries(block)) if (!conditionHolds(op, key, asList(values), req.context)) return false;
  }
  return true;
}

function statementsOf(text: string): Statement[] {
  const raw = (JSON.parse(text) as { Statement: Statement | Statement[] }).Statement;
  return Array.isArray(raw) ? raw : [raw];
}

/** Does any statement of these documents explicitly deny the request? */
export function isExplicitlyDenied(documents: readonly string[], req: EvaluationRequest): boolean {
  return documents.some((d) => statementsOf(d).some((st) => st.Effect === 'Deny' && statementMatches(st, req)));
}

/** Does some statement allow it (and none deny it)? */
export function isAllowed(documents: readonly string[], req: EvaluationRequest): boolean {
  if (isExplicitlyDenied(documents, req)) return false;
  return documents.some((d) => statementsOf(d).some((st) => st.Effect === 'Allow' && statementMatches(st, req)));
}

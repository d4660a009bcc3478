/**
 * Wire facts of IAM Credentials `generateAccessToken` (v1), as
 * `@google-cloud/iam-credentials` 4 sends them in REST ("fallback") mode:
 *
 * `POST /v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken?$alt=json%3Benum-encoding=int`
 * with the `@` of the email percent-encoded, `Authorization: Bearer <caller token>`, body
 * `{"scope":[…],"lifetime":"600s","delegates":[…]}` (empty `delegates` omitted) →
 * `{"accessToken":"…","expireTime":"2030-01-01T00:00:00Z"}`. The client decodes
 * `expireTime` into a protobuf Timestamp `{seconds, nanos}`.
 * See https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken
 */

/**
 * Resource name of a service account. The `-` wildcard project is required by the API
 * ("the project is inferred from the account"); a real project id would also work but
 * buys nothing.
 */
export function serviceAccountResourceName(email: string): string {
  return `projects/-/serviceAccounts/${email}`;
}

/** The request stagegate sends (the client's `IGenerateAccessTokenRequest`, narrowed). */
export interface GenerateAccessTokenRequest {
  readonly name: string;
  readonly scope: string[];
  readonly delegates: string[];
  /** Whole seconds; the client serialises it as `"600s"`. */
  readonly lifetime: { seconds: number };
}

/** What stagegate keeps of a response. `accessToken` is SECRET. */
export interface GeneratedAccessToken {
  readonly accessToken: string;
  readonly expiresAt: Date;
}

/** A protobuf Timestamp as the client decodes it (`seconds` may be a string, number or Long). */
export interface WireTimestamp {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}

/** Decode the client's `expireTime`; `undefined` if it is missing or not a time. */
export function decodeExpireTime(t: WireTimestamp | string | null | undefined): Date | undefined {
  if (t === null || t === undefined) return undefined;
  if (typeof t === 'string') {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? new Date(ms) : undefined;
  }
  if (t.seconds === null || t.seconds === undefined) return undefined;
  const seconds = Number(String(t.seconds));
  if (!Number.isFinite(seconds)) return undefined;
  return new Date(seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
}

/**
 * Server-side SigV4 verification for the AWS fakes, done the way AWS does it: take the
 * request's own `x-amz-date`, keep only the headers named in `SignedHeaders`, hash the
 * raw body, re-sign with `@smithy/signature-v4` using the secret the server knows for
 * the access key id, and compare signatures in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';

/** SHA-256 / HMAC-SHA-256 in the shape `@smithy/signature-v4` wants (its `Checksum`). */
class NodeSha256 {
  private readonly hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    if (secret === undefined) this.hash = createHash('sha256');
    else if (typeof secret === 'string') this.hash = createHmac('sha256', secret);
    else this.hash = createHmac('sha256', Buffer.from(ArrayBuffer.isView(secret) ? new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength) : new Uint8Array(secret)));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof data === 'string') this.hash.update(data, 'utf8');
    else this.hash.update(ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    throw new Error('reset is not needed by the verifier');
  }
}

export interface ParsedAuthorization {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** Parse an `Authorization: AWS4-HMAC-SHA256 …` header; `undefined` if absent or malformed. */
export function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  const m = header ? AUTH.exec(header) : null;
  if (!m) return undefined;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(';'), signature: m[6]! };
}

/** `20240101T000000Z` → Date, or undefined. */
export function parseAmzDate(value: string | undefined): Date | undefined {
  const m = value ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value) : null;
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export type SigV4Failure = 'malformed' | 'signature-mismatch' | 'signature-expired' | 'body-hash-mismatch';

/**
 * Verify the request's signature with `secretAccessKey`. Returns `undefined` when it is
 * valid, else the reason. `wallClock` is used for the ±15 minute skew check (AWS's).
 */
export async function verifySigV4(args: {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly auth: ParsedAuthorization;
  readonly secretAccessKey: string;
  readonly wallClock?: Date;
}): Promise<SigV4Failure | undefined> {
  const { auth } = args;
  const amzDateHeader = args.headers['x-amz-date'];
  const signingDate = parseAmzDate(typeof amzDateHeader === 'string' ? amzDateHeader : undefined);
  if (!signingDate || !auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) return 'malformed';
  if (typeof amzDateHeader !== 'string' || !amzDateHeader.startsWith(auth.date)) return 'malformed';
  const skew = Math.abs((args.wallClock ?? new Date()).getTime() - signingDate.getTime());
  if (skew > 15 * 60 * 1000) return 'signature-expired';

  const bodyHash = createHash('sha256').update(args.body, 'utf8').digest('hex');
  const claimedHash = args.headers['x-amz-content-sha256'];
  if (typeof claimedHash === 'string' && claimedHash !== bodyHash) return 'body-hash-mismatch';

  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const v = args.headers[name];
    if (v === undefined) return 'malformed';
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  const url = new URL(args.path, 'http://placeholder');
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));

  // Credentials without a session token: the signer would otherwise (re)write the
  // x-amz-security-token header; the request's own signed header is what counts.
  const signer = new SignatureV4({
    service: auth.service,
    region: auth.region,
    credentials: { accessKeyId: auth.accessKeyId, secretAccessKey: args.secretAccessKey },
    sha256: NodeSha256,
    applyChecksum: false,
  });
  // Only the signed headers. If x-amz-content-sha256 is among them it was checked against
  // the raw body above; otherwise the signer hashes the raw body itself.
  const request = { method: args.method, protocol: 'http:', hostname: String(args.headers.host ?? '').replace(/:\d+$/, ''), path: url.pathname, query, headers, body: args.body };
  const signed = await signer.sign(request as unknown as Parameters<SignatureV4['sign']>[0], {
    signingDate,
    signableHeaders: new Set(auth.signedHeaders),
    signingRegion: auth.region,
    signingService: auth.service,
  });
  return compare(signed, auth.signature);
}

function compare(signed: unknown, expected: string): SigV4Failure | undefined {
  const header = (signed as { headers: Record<string, string> }).headers.authorization ?? '';
  const got = /Signature=([0-9a-f]{64})$/.exec(header)?.[1] ?? '';
  const a = Buffer.from(got.padEnd(64, '0'), 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b) && got.length === 64 ? undefined : 'signature-mismatch';
}

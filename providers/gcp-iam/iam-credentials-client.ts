/**
 * The client layer of the `gcp-iam` provider: the real `IAMCredentialsClient` (REST
 * mode), a per-attempt timeout, retries of 408/429/5xx/network failures only, and every
 * failure reduced to a coded {@link StagegateError} (see `gcp-error.ts`).
 *
 * Why REST ("fallback") mode in production too: one wire path for production and the
 * tests' fake, HTTP statuses instead of gRPC codes, and no grpc-js channel to manage.
 */
import { IAMCredentialsClient } from '@google-cloud/iam-credentials';
import { GoogleAuth, type AuthClient } from 'google-auth-library';
import type { Logger } from 'pino';
import { StagegateError } from '../../sdk/errors';
import { CLOUD_PLATFORM_SCOPE } from './gcp-iam-config';
import { classifyGcpError, GcpCallTimeout, GcpMalformedResponse, toStagegateError } from './gcp-error';
import {
  decodeExpireTime,
  serviceAccountResourceName,
  type GeneratedAccessToken,
  type WireTimestamp,
} from './gcp-iam-wire';

/** Where the IAM Credentials API is reached. Default `iamcredentials.googleapis.com:443` over https. */
export interface IamCredentialsEndpoint {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
}

export interface IamCredentialsClientOptions {
  /** Endpoint override; omit for Google's public endpoint. */
  readonly endpoint?: IamCredentialsEndpoint;
  /**
   * The broker's own credentials. Default: Application Default Credentials
   * (`GoogleAuth`, cloud-platform scope) — GKE Workload Identity in production. Tests
   * pass an `OAuth2Client` holding a fixed access token.
   */
  readonly authClient?: AuthClient;
  /** Per-attempt timeout, milliseconds. */
  readonly requestTimeoutMs: number;
  /** Attempts per call (1 = no retry). */
  readonly maxAttempts: number;
  /** Backoff before retry n is `retryBaseDelayMs * 3^(n-1)` plus up to 50 % jitter, milliseconds (default 200). */
  readonly retryBaseDelayMs?: number;
  readonly logger: Logger;
}

export interface MintAccessTokenInput {
  readonly serviceAccountEmail: string;
  readonly scopes: readonly string[];
  readonly delegates: readonly string[];
  /**
   * Lifetime to ask for, whole seconds, computed per attempt: retries happen seconds
   * later and a token must never outlive the bound its caller computed. May throw a
   * `StagegateError` to stop (no time left).
   */
  readonly lifetimeSeconds: () => number;
}

/** The IAM Credentials calls stagegate makes. */
export interface IamCredentialsCaller {
  /** Mint an access token for a service account. The result is SECRET. */
  generateAccessToken(input: MintAccessTokenInput): Promise<GeneratedAccessToken & { attempts: number }>;
  /** Cheap readiness check: the broker's own credentials yield a token (no IAM call). */
  checkOwnCredentials(): Promise<void>;
  close(): Promise<void>;
}

/** Default backoff base before the first retry, milliseconds. */
export const DEFAULT_RETRY_BASE_DELAY_MS = 200;

/**
 * Create the client layer.
 *
 * @example
 * const caller = createIamCredentialsClient({ requestTimeoutMs: 10_000, maxAttempts: 3, logger });
 * const { accessToken, expiresAt } = await caller.generateAccessToken({
 *   serviceAccountEmail: 'deployer@my-project.iam.gserviceaccount.com',
 *   scopes: [CLOUD_PLATFORM_SCOPE], delegates: [], lifetimeSeconds: () => 600,
 * });
 */
export function createIamCredentialsClient(options: IamCredentialsClientOptions): IamCredentialsCaller {
  const auth: { getAccessToken(): Promise<unknown> } & (GoogleAuth | AuthClient) =
    options.authClient ??
    new GoogleAuth({
      scopes: [CLOUD_PLATFORM_SCOPE],
      // fetchImplementation: gaxios otherwise reaches for a dynamic import, which some
      // runtimes (Jest's VM) cannot do; timeout bounds the metadata-server/STS calls.
      clientOptions: { transporterOptions: { fetchImplementation: fetch, timeout: options.requestTimeoutMs } },
    });
  const client = new IAMCredentialsClient({
    fallback: true,
    ...(options.authClient ? { authClient: options.authClient } : { auth: auth as GoogleAuth }),
    ...(options.endpoint
      ? { apiEndpoint: options.endpoint.host, port: options.endpoint.port, protocol: options.endpoint.protocol }
      : {}),
  });
  const baseDelay = options.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS;
  const log = options.logger;

  async function withTimeout<T>(work: Promise<T>): Promise<T> {
    // The REST transport ignores gax's `timeout` call option, so bound each attempt
    // here. A late success after the timer is a token nobody holds; its lifetime was
    // bounded by the caller, so it dies on schedule.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new GcpCallTimeout()), options.requestTimeoutMs);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
      work.catch(() => undefined); // a rejection after the timeout must not surface as unhandled
    }
  }

  async function attempt(input: MintAccessTokenInput): Promise<GeneratedAccessToken> {
    const lifetime = input.lifetimeSeconds();
    const [response] = await withTimeout(
      client.generateAccessToken(
        {
          name: serviceAccountResourceName(input.serviceAccountEmail),
          scope: [...input.scopes],
          delegates: input.delegates.map(serviceAccountResourceName),
          lifetime: { seconds: lifetime },
        },
        // maxRetries 0: gax's own retry loop would retry for up to 10 min by default;
        // retries are decided here, by HTTP status, with a bounded budget.
        { maxRetries: 0 },
      ),
    );
    const accessToken = response?.accessToken;
    const expiresAt = decodeExpireTime(response?.expireTime as WireTimestamp | null | undefined);
    if (typeof accessToken !== 'string' || accessToken.length === 0 || expiresAt === undefined) {
      throw new GcpMalformedResponse();
    }
    return { accessToken, expiresAt };
  }

  return {
    async generateAccessToken(input) {
      for (let n = 1; ; n++) {
        try {
          return { ...(await attempt(input)), attempts: n };
        } catch (err) {
          if (err instanceof StagegateError) throw err; // raised by lifetimeSeconds(): not a cloud failure
          const failure = classifyGcpError(err);
          if (!failure.transient || n >= options.maxAttempts) {
            throw toStagegateError(failure, { operation: 'generateAccessToken', attempts: n });
          }
          const delay = baseDelay * 3 ** (n - 1) * (1 + Math.random() / 2);
          log.warn(
            { provider: 'gcp-iam', operation: 'generateAccessToken', attempt: n, httpStatus: failure.httpStatus, googleStatus: failure.googleStatus, reason: failure.reason, retryInMs: Math.round(delay) },
            'GCP IAM Credentials call failed; retrying',
          );
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    },

    async checkOwnCredentials() {
      try {
        const token = await withTimeout(auth.getAccessToken());
        const value = typeof token === 'string' ? token : (token as { token?: unknown } | null)?.token;
        if (typeof value !== 'string' || value.length === 0) throw new GcpMalformedResponse();
      } catch (err) {
        // Whatever went wrong obtaining the broker's own credentials, the provider is not
        // usable now: report it as unavailable, reduced to its status like every call.
        const failure = classifyGcpError(err);
        throw toStagegateError({ ...failure, transient: true }, { operation: 'getOwnAccessToken', attempts: 1 });
      }
    },

    async close() {
      await client.close();
    },
  };
}

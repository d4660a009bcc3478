import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { preAuthEncoding } from '../../broker/provenance';

/**
 * Real signed attestations for tests: keys made with node:crypto, in-toto statements
 * with SLSA provenance v1 or v0.2 predicates, DSSE envelopes signed over the PAE.
 */
export type KeyKind = 'ecdsa-p256' | 'ed25519' | 'rsa';

export interface TestKey {
  readonly kind: KeyKind;
  readonly privateKey: KeyObject;
  readonly publicPem: string;
}

export function makeKey(kind: KeyKind): TestKey {
  const pair =
    kind === 'ecdsa-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : kind === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kind, privateKey: pair.privateKey, publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export interface BuildFacts {
  readonly subjects: ReadonlyArray<{ name: string; sha256: string }>;
  readonly builderId: string;
  readonly buildType: string;
  /** e.g. https://github.com/acme/web */
  readonly repo: string;
  readonly ref: string;
  readonly commit: string;
}

export const GITHUB_BUILD_TYPE = 'https://actions.github.io/buildtypes/workflow/v1';
export const GITHUB_HOSTED_BUILDER = 'https://github.com/actions/runner/github-hosted';

/** An in-toto Statement v1 with a SLSA v1 predicate shaped like actions/attest-build-provenance's. */
export function slsaV1Statement(f: BuildFacts): object {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: f.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType: f.buildType,
        externalParameters: { workflow: { ref: f.ref, repository: f.repo, path: '.github/workflows/release.yml' } },
        internalParameters: { github: { event_name: 'push' } },
        resolvedDependencies: [{ uri: `git+${f.repo}@${f.ref}`, digest: { gitCommit: f.commit } }],
      },
      runDetails: { builder: { id: f.builderId }, metadata: { invocationId: `${f.repo}/actions/runs/1/attempts/1` } },
    },
  };
}

/** An in-toto Statement v0.1 with a SLSA v0.2 predicate (slsa-github-generator style). */
export function slsaV02Statement(f: BuildFacts): object {
  return {
    _type: 'https://in-toto.io/Statement/v0.1',
    subject: f.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    predicateType: 'https://slsa.dev/provenance/v0.2',
    predicate: {
      builder: { id: f.builderId },
      buildType: f.buildType,
      invocation: { configSource: { uri: `git+${f.repo}.git@${f.ref}`, digest: { sha1: f.commit }, entryPoint: '.github/workflows/release.yml' } },
      materials: [{ uri: `git+${f.repo}.git@${f.ref}`, digest: { sha1: f.commit } }],
    },
  };
}

/** Sign a statement into a DSSE envelope (payloadType application/vnd.in-toto+json). */
export function signEnvelope(statement: object, key: TestKey, payloadType = 'application/vnd.in-toto+json'): {
  payloadType: string;
  payload: string;
  signatures: Array<{ keyid: string; sig: string }>;
} {
  const payload = Buffer.from(JSON.stringify(statement));
  const pae = preAuthEncoding(payloadType, payload);
  const sig = sign(key.kind === 'ed25519' ? null : 'sha256', pae, key.privateKey);
  return { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: '', sig: sig.toString('base64') }] };
}

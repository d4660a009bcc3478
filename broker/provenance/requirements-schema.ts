import { z } from 'zod';

/**
 * The shape of a stage's `requires:` list in the policy file. Every entry must pass;
 * an entry is either one requirement item or `anyOf: [items]` (at least one passes).
 *
 * A requirement item has exactly one of `sigstore:` / `dsse:` (how the evidence is
 * signed), and optionally `slsa:` (SLSA provenance predicate checks) and `bindings:`
 * (identity-token claims that must equal verified provenance facts). String values
 * marked "template" may contain `{claim}` placeholders filled from the token.
 *
 * @example
 * ```yaml
 * requires:
 *   - sigstore:
 *       identity: "https://github.com/acme/web/.github/workflows/release.yml@refs/heads/main"
 *       issuer: https://token.actions.githubusercontent.com
 *     slsa:
 *       builderIds: [https://github.com/actions/runner/github-hosted]
 *       sourceRepo: "https://github.com/{repository}"
 *       sourceDigest: "{sha}"
 * ```
 */

const text = z.string().min(1);

/** Provenance facts a binding can compare (see `ProvenanceFacts`). */
export const BINDABLE_FACTS = [
  'builderId',
  'buildType',
  'sourceRepo',
  'sourceRef',
  'sourceDigest',
  'signerIdentity',
  'signerIssuer',
  'predicateType',
] as const;
export type BindableFact = (typeof BINDABLE_FACTS)[number];

export const sigstoreRequirementSchema = z
  .object({
    /** Exact certificate SAN (template). */
    identity: text.optional(),
    /** Certificate SAN pattern, always matched against the whole SAN (template; claim values are regex-escaped). */
    identityRegex: text.optional(),
    /** Exact OIDC issuer recorded in the certificate (template). Required with identity/identityRegex. */
    issuer: text.optional(),
    /** A PEM public key the bundle must be signed with (instead of a certificate identity). */
    publicKey: text.optional(),
    /** A file holding that PEM public key, relative to the config file. */
    publicKeyFile: text.optional(),
    /** A trusted root: a name from the broker's trusted roots (default `public-good`) or a `trusted_root.json` path. */
    trustedRoot: text.optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const modes = [v.identity, v.identityRegex, v.publicKey, v.publicKeyFile].filter((x) => x !== undefined).length;
    if (modes !== 1) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of identity, identityRegex, publicKey, publicKeyFile' });
    }
    const byIdentity = v.identity !== undefined || v.identityRegex !== undefined;
    if (byIdentity && v.issuer === undefined) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'issuer is required with identity/identityRegex' });
    }
    if (!byIdentity && v.issuer !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'issuer only applies to a certificate identity' });
    }
  });

export const dsseRequirementSchema = z
  .object({
    /** PEM public keys (ECDSA P-256/P-384, Ed25519, RSA ≥ 2048 bits); any one may sign. */
    keys: z.array(text).optional(),
    /** Files holding PEM public keys, relative to the config file. */
    keyFiles: z.array(text).optional(),
  })
  .strict()
  .refine((v) => (v.keys?.length ?? 0) + (v.keyFiles?.length ?? 0) > 0, { message: 'give at least one key in keys or keyFiles' });

export const slsaRequirementSchema = z
  .object({
    /** Accepted SLSA versions; default both `v1` and `v0.2`. */
    versions: z.array(z.enum(['v1', 'v0.2'])).min(1).optional(),
    /** Allowed `builder.id` values (exact). */
    builderIds: z.array(text).min(1),
    /** Allowed `buildType` values (exact); any when absent. */
    buildTypes: z.array(text).min(1).optional(),
    /** Source repository URL (template), compared after dropping `git+` and a trailing `.git`. */
    sourceRepo: text.optional(),
    /** Source ref, e.g. `refs/heads/main` (template). */
    sourceRef: text.optional(),
    /** Source commit digest (template), compared case-insensitively. */
    sourceDigest: text.optional(),
  })
  .strict();

export const bindingSchema = z
  .object({
    /** The verified provenance fact to compare. */
    fact: z.enum(BINDABLE_FACTS),
    /** It must equal this claim's value ... */
    claim: text.optional(),
    /** ... or this template. */
    equals: text.optional(),
  })
  .strict()
  .refine((v) => (v.claim === undefined) !== (v.equals === undefined), { message: 'give exactly one of claim or equals' });

const itemShape = {
  sigstore: sigstoreRequirementSchema.optional(),
  dsse: dsseRequirementSchema.optional(),
  slsa: slsaRequirementSchema.optional(),
  bindings: z.array(bindingSchema).optional(),
  /** Demand that the stage declares at least one artifact digest (default false). */
  requireArtifact: z.boolean().optional(),
};

function refineItem(v: { sigstore?: unknown; dsse?: unknown }, ctx: z.RefinementCtx): void {
  if ((v.sigstore === undefined) === (v.dsse === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'a requirement needs exactly one of sigstore or dsse' });
  }
}

export const requirementItemSchema = z.object(itemShape).strict().superRefine(refineItem);

/** One entry of `requires:`: a requirement item, or `anyOf:` a list of them. */
export const requirementEntrySchema = z
  .object({ ...itemShape, anyOf: z.array(requirementItemSchema).min(1).optional() })
  .strict()
  .superRefine((v, ctx) => {
    if (v.anyOf !== undefined) {
      const extra = Object.keys(v).filter((k) => k !== 'anyOf');
      if (extra.length > 0) ctx.addIssue({ code: 'custom', message: 'anyOf stands alone: move other keys into its items' });
      return;
    }
    refineItem(v, ctx);
  });

/** A stage's `requires:` list. */
export const requirementsSchema = z.array(requirementEntrySchema);

export type RequirementsConfig = z.infer<typeof requirementsSchema>;
export type RequirementItemConfig = z.infer<typeof requirementItemSchema>;
export type SigstoreRequirementConfig = z.infer<typeof sigstoreRequirementSchema>;
export type DsseRequirementConfig = z.infer<typeof dsseRequirementSchema>;
export type SlsaRequirementConfig = z.infer<typeof slsaRequirementSchema>;
export type BindingConfig = z.infer<typeof bindingSchema>;

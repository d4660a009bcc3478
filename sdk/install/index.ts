/**
 * `stagegate install` — the process side: run a dependency install with a scrubbed
 * environment, lifecycle scripts off except reviewed ones, and every process it started
 * gone when it returns. See docs/install-phase.md.
 */
export { runContainedInstall } from './run-contained-install';
export type { ContainedInstallOptions, InstallResult, ScriptsPolicyReport } from './run-contained-install';
export { scrubEnvironment, secretReasonFor, SCRUBBED_PREFIXES, SCRUBBED_NAMES, SECRET_WORDS, SECRET_LAST_WORDS } from './scrub-environment';
export type { ScrubbedEnvironment } from './scrub-environment';
export { detectPackageManager, detectYarnFlavor } from './detect-package-manager';
export type { PackageManager, YarnFlavor, DetectedPackageManager } from './detect-package-manager';
export { parseAllowScriptsEntry, planScriptsPolicy, SCRIPT_ENABLING_ENV } from './plan-scripts-policy';
export type { AllowScriptsEntry, RebuildStep, ScriptsPlan, ScriptsPolicyInput } from './plan-scripts-policy';
export { findInstalledVersions } from './find-installed-versions';
export { runContained, INSTALL_MARKER_ENV, SWEEP_TIMEOUT_MS } from './run-contained';
export type { Containment, ContainedStdio, RunContainedOptions, RunContainedResult } from './run-contained';
export { isProcessAlive, listProcesses } from './list-processes';
export type { ProcessFacts } from './list-processes';
export { probePidNamespace } from './pid-namespace';

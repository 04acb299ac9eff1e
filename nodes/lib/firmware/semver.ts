/**
 * Semantic versions (semver.org 2.0.0): validation and precedence, enough to name and order firmware builds.
 * The pattern is the one semver.org publishes; a version is at most 64 characters (it becomes a file name).
 */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export const MAX_VERSION_LENGTH = 64;

export function isSemver(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_VERSION_LENGTH && SEMVER.test(v);
}

/** Precedence as semver.org §11: negative when a < b, 0 when equal (build metadata ignored), positive when a > b. */
export function compareSemver(a: string, b: string): number {
  const pa = SEMVER.exec(a);
  const pb = SEMVER.exec(b);
  if (!pa || !pb) throw new Error(`not a semantic version: ${pa ? b : a}`);
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d !== 0) return d;
  }
  const ra = (pa[4] as string | undefined)?.split('.');
  const rb = (pb[4] as string | undefined)?.split('.');
  if (!ra || !rb) return ra ? -1 : rb ? 1 : 0; // a pre-release comes before its release
  for (let i = 0; i < Math.max(ra.length, rb.length); i++) {
    if (i >= ra.length) return -1;
    if (i >= rb.length) return 1;
    const na = /^\d+$/.test(ra[i]);
    const nb = /^\d+$/.test(rb[i]);
    if (na && nb) {
      const d = Number(ra[i]) - Number(rb[i]);
      if (d !== 0) return d;
    } else if (na !== nb) return na ? -1 : 1;
    else if (ra[i] !== rb[i]) return ra[i] < rb[i] ? -1 : 1;
  }
  return 0;
}

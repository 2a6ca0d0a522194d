// One rule for tests that need something outside the project (PyTorch, a tmpfs, Chromium, the real
// Caltech-101 images): whether they run is decided when the file loads, and a skip says why. Where
// CI is set, a prerequisite CI is meant to have is not skipped: the tests run and fail, so a broken
// CI machine cannot turn into a green run that tested nothing.

/** Whether this run must treat a missing prerequisite as a failure ($CI set to anything but false/0). */
export function requiredHere(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

export interface Prerequisite {
  /** `describe` when available (or required here), `describe.skip` otherwise. */
  describe: jest.Describe;
  /** `test` when available (or required here), `test.skip` otherwise. */
  test: jest.It;
  /** Null when available; else why not. */
  missing: string | null;
}

/**
 * `missing`: null when the prerequisite is there, else why it is not. Skips (announced on stderr,
 * since Jest prints nothing of a file whose tests all skipped) unless CI requires it, where the
 * tests run and the first one to need it fails with `missing` in its message.
 */
export function prerequisite(name: string, missing: string | null): Prerequisite {
  if (missing === null) return { describe, test, missing };
  if (requiredHere()) {
    process.stderr.write(`${name}: ${missing}; CI is set, so the tests that need it run and fail\n`);
    return { describe, test, missing };
  }
  process.stderr.write(`${name}: ${missing}; skipping the tests that need it (set CI=1 to make this a failure)\n`);
  return { describe: describe.skip, test: test.skip, missing };
}

/** For the test body: throws with the reason when a required prerequisite is missing. */
export function assertPresent(p: Prerequisite): void {
  if (p.missing !== null) throw new Error(`prerequisite missing: ${p.missing}`);
}

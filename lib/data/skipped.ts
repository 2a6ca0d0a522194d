// Files the data layer could not use: collected, summarised in one warning, or fatal in strict mode.

export type SkipKind =
  | 'empty-file'
  | 'not-an-image'
  | 'unreadable'
  | 'empty-class'
  | 'outside-class'
  | 'decode-failed';

export interface SkippedFile {
  /** Absolute path of the file (or class folder) that was skipped. */
  path: string;
  /** Why, in words. */
  reason: string;
  kind: SkipKind;
}

export type WarnFn = (message: string) => void;

const KIND_WORDS: Record<SkipKind, string> = {
  'empty-file': 'empty file',
  'not-an-image': 'not an image',
  unreadable: 'unreadable',
  'empty-class': 'class folder without images',
  'outside-class': 'file outside any class folder',
  'decode-failed': 'failed to decode',
};

/** The default warning sink: a Node process warning (printed once per call, can be silenced with --no-warnings). */
export function defaultWarn(message: string): void {
  process.emitWarning(message, { type: 'FinetorchDataWarning', code: 'FINETORCH_SKIPPED_FILES' });
}

/** "3 of 820 files skipped in 'x' (2 not an image, 1 empty file); first: a/b.txt (not an image: ...)". */
export function summariseSkipped(skipped: readonly SkippedFile[], what: string, total?: number): string {
  const counts = new Map<SkipKind, number>();
  for (const s of skipped) counts.set(s.kind, (counts.get(s.kind) ?? 0) + 1);
  const parts = [...counts].map(([kind, n]) => `${n} ${KIND_WORDS[kind]}`);
  const shown = skipped
    .slice(0, 3)
    .map((s) => `${s.path} (${s.reason})`)
    .join('; ');
  const more = skipped.length > 3 ? `; and ${skipped.length - 3} more` : '';
  const of = total !== undefined ? ` of ${total}` : '';
  return `Skipped ${skipped.length}${of} ${(total ?? skipped.length) === 1 ? 'entry' : 'entries'} ${what} (${parts.join(', ')}): ${shown}${more}`;
}

/**
 * Reports skipped files: nothing when there are none, one warning when there are some,
 * an Error listing them (up to 20) in strict mode.
 */
export function reportSkipped(
  skipped: readonly SkippedFile[],
  what: string,
  options: { strict?: boolean; warn?: WarnFn; total?: number },
): void {
  if (skipped.length === 0) return;
  if (options.strict) {
    const list = skipped
      .slice(0, 20)
      .map((s) => `  ${s.path}: ${s.reason}`)
      .join('\n');
    const more = skipped.length > 20 ? `\n  ... and ${skipped.length - 20} more` : '';
    throw new Error(
      `strict mode: ${skipped.length} unusable ${skipped.length === 1 ? 'entry' : 'entries'} ${what}:\n${list}${more}\n` +
        'Remove or fix them, or pass strict: false to skip them with a warning.',
    );
  }
  (options.warn ?? defaultWarn)(summariseSkipped(skipped, what, options.total));
}

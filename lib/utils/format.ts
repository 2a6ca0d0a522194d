// Number formatting shared by the trainer's log lines, the CLI, tables and reports.

/** 0.7214 → `72.1%` (digits after the point: 1 unless told). */
export function pct(fraction: number, digits = 1): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

/**
 * Compact duration for progress lines: `3s`, `2m05s`, `1h02m` (rounded to the second first, so
 * 59.6 → `1m00s`); `?` when not finite or negative.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Duration in words for reports: `42.1 s`, `12 min 05 s`, `2 h 03 min`; `—` when undefined. */
export function formatDurationLong(seconds: number | undefined): string {
  if (seconds === undefined) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

// The doctor's findings as a readable table: status, area, what was seen, and under each problem
// or warning the fix.
import type { Finding } from './diagnose';

const LABEL: Record<Finding['status'], string> = { ok: 'ok', info: 'info', warn: 'WARN', problem: 'PROBLEM' };

export function formatFindings(findings: Finding[]): string {
  const areaWidth = Math.max(...findings.map((f) => f.area.length));
  const labelWidth = Math.max(...findings.map((f) => LABEL[f.status].length));
  const indent = ' '.repeat(labelWidth + areaWidth + 4);
  const lines: string[] = [];
  for (const f of findings) {
    const [first, ...rest] = f.detail.split('\n');
    lines.push(`${LABEL[f.status].padEnd(labelWidth)}  ${f.area.padEnd(areaWidth)}  ${first}`);
    for (const line of rest) lines.push(`${indent}${line}`);
    if (f.fix && f.status !== 'ok') lines.push(`${indent}fix: ${f.fix}`);
  }
  const problems = findings.filter((f) => f.status === 'problem').length;
  const warnings = findings.filter((f) => f.status === 'warn').length;
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('', problems === 0 ? `no problems found${warnings ? ` (${count(warnings, 'warning')})` : ''}` : `${count(problems, 'problem')}, ${count(warnings, 'warning')}: see the fixes above`);
  return lines.join('\n');
}

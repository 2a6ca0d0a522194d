import { diagnose, formatFindings } from '../../lib/doctor';
import { healthyFacts } from '../helpers/doctor-facts';

describe('formatFindings', () => {
  test('one line per finding, the fix under each problem, and a summary', () => {
    const facts = healthyFacts();
    facts.blas = { ...facts.blas, kind: 'reference', file: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0' };
    const lines = formatFindings(diagnose(facts)).split('\n');
    const at = lines.findIndex((l) => l.startsWith('PROBLEM  BLAS'));
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toMatch(/^ {10,}fix: install OpenBLAS/);
    expect(lines.filter((l) => l.includes('fix:'))).toHaveLength(1);
    expect(lines[lines.length - 1]).toBe('1 problem, 0 warnings: see the fixes above');
  });

  test('a healthy machine ends with "no problems found"; warnings are counted', () => {
    expect(formatFindings(diagnose(healthyFacts())).split('\n').pop()).toBe('no problems found');
    const facts = healthyFacts();
    facts.env = { FINETORCH_MALLOC_TUNING: '0' };
    expect(formatFindings(diagnose(facts)).split('\n').pop()).toBe('no problems found (1 warning)');
  });

  test('a detail of several lines is indented under its first', () => {
    const text = formatFindings([{ area: 'libtorch', status: 'problem', detail: 'did not load:\nline two', fix: 'rebuild' }]);
    expect(text.split('\n').slice(0, 3)).toEqual(['PROBLEM  libtorch  did not load:', '                   line two', '                   fix: rebuild']);
  });
});

// Option checks shared by the chart functions: picture sizes, optional strings, class-name lists.

import { integerInRange, invalid } from '../../utils/validate';

export function checkSize(name: string, value: unknown, fallback: number): number {
  return value === undefined ? fallback : integerInRange(name, value, 50, 20000);
}

export function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid('string', name, value);
  return value;
}

export function checkClassNames(name: string, value: unknown, n: number): string[] {
  if (!Array.isArray(value) || value.length !== n || value.some((v) => typeof v !== 'string')) {
    throw invalid(`an array of ${n} strings`, name, value);
  }
  return value;
}

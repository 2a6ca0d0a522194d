// Checks shared by the schedulers: option and state validators, the optimizer check, and reading
// and writing the groups' lrs.

import { finiteNumber, invalid, knownKeys, oneOf, plainObject, positiveInteger } from '../../utils/validate';

import type { LrGroups } from './types';

// Validation helpers beyond lib/utils/validate.ts, in the same "Expected X for name but received Y" style.

export function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalid('positive number', name, value);
  return value;
}

export function nonNegativeNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid('non-negative number', name, value);
  }
  return value;
}

// PyTorch accepts 0 but then divides by zero on the next step, so the lower bound is excluded.
export function startFactorNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) {
    throw invalid('number greater than 0 and at most 1', name, value);
  }
  return value;
}

export function unitNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw invalid('number between 0 and 1', name, value);
  }
  return value;
}

export function optional<T>(value: unknown, fallback: T, check: (v: unknown) => T): T {
  return value === undefined ? fallback : check(value);
}

export function finiteNumberArray(name: string, value: unknown, length: number): number[] {
  if (!Array.isArray(value) || value.length !== length) {
    throw invalid(`array of ${length} finite numbers`, name, value);
  }
  return value.map((v, i) => finiteNumber(`${name}[${i}]`, v));
}

export function optionsObject(name: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  const options = plainObject(name, value);
  knownKeys(name, options, known);
  return options;
}

export function checkOptimizer(optimizer: unknown): LrGroups {
  const o = optimizer as Partial<LrGroups> | null | undefined;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.getLr !== 'function' ||
    typeof o.setLr !== 'function' ||
    typeof o.groupCount !== 'number'
  ) {
    throw invalid('optimizer with getLr, setLr and groupCount', 'optimizer', optimizer);
  }
  positiveInteger('optimizer.groupCount', o.groupCount);
  return o as LrGroups;
}

export function readLrs(optimizer: LrGroups): number[] {
  return Array.from({ length: optimizer.groupCount }, (_, i) => finiteNumber(`lr of group ${i}`, optimizer.getLr(i)));
}

export function writeLrs(optimizer: LrGroups, lrs: readonly number[]): void {
  lrs.forEach((lr, i) => optimizer.setLr(i, lr));
}

export function stateObject(path: string, state: unknown, scheduler: string): Record<string, unknown> {
  const s = plainObject(path, state);
  oneOf(`${path}.scheduler`, s.scheduler, [scheduler]);
  return s;
}

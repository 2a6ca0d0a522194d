/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  // native work is slow on 2 cores; keep per-test budgets generous, not the suite's speed claims
  testTimeout: 120000,
  maxWorkers: 1,
};

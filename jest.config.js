/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  // A per-test budget is a hang detector, not a speed claim: on 2 cores shared with another busy
  // job, parity and leak tests have taken over 7 minutes. 10 minutes still stops a real hang.
  testTimeout: 600000,
  maxWorkers: 1,
};

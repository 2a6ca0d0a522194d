/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  // A per-test budget is a hang detector, not a speed claim: on 2 cores shared with another busy
  // job, parity and leak tests have taken over 7 minutes. 10 minutes still stops a real hang.
  testTimeout: 600000,
  // One process for all files: the addon's process-wide settings (threads, TF32, the generator) are
  // recorded before each file and put back after it, so no file depends on the ones run before it.
  maxWorkers: 1,
  setupFilesAfterEnv: ['<rootDir>/test/helpers/state-restore.ts'],
};

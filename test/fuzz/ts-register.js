// Lets a plain `node` child process require the TypeScript sources (scripts/fuzz/ and lib/)
// directly: each .ts file is transpiled on load with TypeScript's transpileModule (no type check),
// the way ts-jest's isolatedModules mode does. Used by test/fuzz/fuzz.test.ts for its fuzz workers,
// so that the test does not depend on an up-to-date dist/.
//
//   node -r ./test/fuzz/ts-register.js scripts/fuzz/worker.ts
const fs = require('fs');
const ts = require('typescript');

const options = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  inlineSourceMap: true,
};

require.extensions['.ts'] = function compileTypeScript(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, { fileName: filename, compilerOptions: options });
  module._compile(outputText, filename);
};

// Loaded with `node -r` into a `finetorch data download` child process by
// test/experiment/cli-actions.test.ts. A test archive cannot have the md5 of the real
// 101_ObjectCategories.tar.gz, and the CLI has no flag for another one, so this swaps only that:
// downloadCaltech101 checks the md5 in $FINETORCH_TEST_CALTECH101_MD5 instead of torchvision's
// (which test/download/caltech101.test.ts checks against torchvision's sources). Everything else,
// the CLI's options included, is passed through unchanged.
const path = require('path');

// the module instance the CLI itself will load: dist/lib/... next to the dist/scripts/cli.js being run
const module_ = require(path.join(path.dirname(process.argv[1]), '..', 'lib', 'download', 'caltech101.js'));
const real = module_.downloadCaltech101;
const md5 = process.env.FINETORCH_TEST_CALTECH101_MD5;
if (!/^[0-9a-f]{32}$/.test(md5 || '')) throw new Error('cli-caltech101-md5.js: set FINETORCH_TEST_CALTECH101_MD5 to the test archive\'s md5');

module_.downloadCaltech101 = (root, options = {}) => {
  // if the CLI ever passes an md5 of its own, this stand-in would hide it: fail instead
  if (options.md5 !== undefined) throw new Error(`cli-caltech101-md5.js: the CLI passed md5 ${options.md5} itself; update the test`);
  return real(root, { ...options, md5 });
};

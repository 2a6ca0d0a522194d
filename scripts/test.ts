// `node dist/scripts/test.js --checkpoint <run>`: evaluate on the saved test split, over the CLI.
import { main } from './cli';

main([process.argv[0], process.argv[1], 'test', ...process.argv.slice(2)]).then((code) => {
  process.exitCode = code;
});

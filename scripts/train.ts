// `node dist/scripts/train.js --phase ...`: the seed's `python train.py --phase ...`, over the CLI.
import { main } from './cli';

main([process.argv[0], process.argv[1], 'train', ...process.argv.slice(2)]).then((code) => {
  process.exitCode = code;
});

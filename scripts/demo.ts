// npm run demo: the embedded end-to-end experiment (lands with the experiment issue).
import { runtimeInfo } from '../lib';

const info = runtimeInfo();
console.log(`finetorch on libtorch ${info.torchVersion} (${info.threads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'})`);
console.log('demo not implemented yet');

/** Runs the gateway exactly as `npm start` does, with the benchmark's event-loop delay probe. */
import { installEldProbe } from './eld-probe';

installEldProbe();
require('../src/main');

/** Runs the gateway exactly as `npm start` does, with the benchmark's event-loop delay probe. */
import { installEldProbe } from './eld-probe';

installEldProbe();
// Loaded after the probe is in place, as main.ts loads the app after tracing.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../src/main');

#!/usr/bin/env node
// The installed command: runs the compiled gateway (see src/main.ts for --help and --version).
require('../dist/src/main.js');

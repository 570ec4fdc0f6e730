#!/usr/bin/env node
// solc-shim.js - lets forge use the npm `solc` package (solc-js) as its
// compiler: answers `--version` in solc's own format and `--standard-json`
// (input on stdin, read asynchronously; imports resolved from the project
// and node_modules). forge cannot download native compilers here.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\n' +
                       'Version: ' + solc.version() + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}
// Directories imports may come from: --base-path, --include-path, --allow-paths.
const roots = [process.cwd(), __dirname, path.join(__dirname, 'node_modules')];
for (let i = 0; i < args.length; i++) {
  if (['--base-path', '--include-path'].includes(args[i]) && args[i + 1]) roots.push(args[i + 1]);
  if (args[i] === '--allow-paths' && args[i + 1]) roots.push(...args[i + 1].split(','));
}
function findImports(p) {
  const candidates = path.isAbsolute(p) ? [p] : roots.map((r) => path.join(r, p));
  for (const c of candidates) {
    try { return { contents: fs.readFileSync(c, 'utf8') }; } catch (e) { /* next */ }
  }
  return { error: 'File not found: ' + p };
}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const out = solc.compile(Buffer.concat(chunks).toString('utf8'), { import: findImports });
  process.stdout.write(out);
});

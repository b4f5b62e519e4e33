#!/usr/bin/env node
// The `bakehouse` command (package.json "bin"): runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./chat-cli.ts');
process.exitCode = await main(process.argv.slice(2), { input: process.stdin, output: process.stdout, error: process.stderr, env: process.env });

import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', 'batch/', '.data/', 'bench/results/', '**/.venv/', 'functions/console/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Plain Node scripts that run before dependencies are installed.
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    // Runtime code never loads the deployment tooling (it would land in the Lambda bundles).
    files: ['functions/**/*.ts'],
    ignores: ['functions/core/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'], message: 'CDK belongs in lib/ and bin/.' }],
      }],
    },
  },
  {
    // The domain stays portable: no AWS SDK, no HTTP framework, no adapters (DESIGN.md §2).
    files: ['functions/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['@aws-sdk/*', 'hono', 'hono/*', '@hono/*', 'aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'], message: 'functions/core is framework-free.' },
          { group: ['#adapters/*', '#http/*', '#local/*'], message: 'functions/core talks to ports only.' },
        ],
      }],
    },
  },
);

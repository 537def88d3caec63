// Type-aware lint: floating promises are the classic queue bug, so they are errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const FASTIFY = { name: 'fastify', message: 'fastify lives in src/http only.' };
const AI_SDKS = ['openai', '@google/genai'].map((name) => ({ name, message: 'Vendor AI SDKs live in src/ai/providers only.' }));
const SEAL = { name: 'node-seal', message: 'Microsoft SEAL lives in src/security (fhe-aggregator.ts) only.' };

export default tseslint.config(
  { ignores: ['node_modules', 'dist', 'data', 'web/dist', 'bench/results', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      'no-restricted-syntax': ['error', { selector: 'TSEnumDeclaration', message: 'Use string unions or as-const objects, not enum.' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only src/config reads process.env.' }],
    },
  },
  {
    files: ['src/config/**', 'test/**', 'bench/**', 'vitest.config.ts', 'scripts/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  // Each driver has one home (ARCHITECTURE §3): fastify in src/http, vendor AI SDKs in
  // src/ai/providers, SEAL in src/security.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/http/**', 'src/ai/providers/**', 'src/security/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [FASTIFY, ...AI_SDKS, SEAL] }] },
  },
  { files: ['src/http/**/*.ts'], rules: { 'no-restricted-imports': ['error', { paths: [...AI_SDKS, SEAL] }] } },
  { files: ['src/ai/providers/**/*.ts'], rules: { 'no-restricted-imports': ['error', { paths: [FASTIFY, SEAL] }] } },
  { files: ['src/security/**/*.ts'], rules: { 'no-restricted-imports': ['error', { paths: [FASTIFY, ...AI_SDKS] }] } },
);

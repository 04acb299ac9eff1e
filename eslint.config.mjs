// Flat config: typescript-eslint's strictTypeChecked (type-aware, the strict set) for TypeScript, ESLint's
// recommended rules for plain JS. Deviations from the strict set are listed below, each with its reason.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['.compat/', 'node_modules/', 'dist/', 'examples/', '.node-red/', 'nodes/**/*.html'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // `() => emitter.emit(...)` as a callback and `return done(err)` in a void function are the idioms of
      // Node-RED and node:events code; a void value used anywhere else is still an error.
      '@typescript-eslint/no-confusing-void-expression': [
        'error',
        { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true },
      ],
    },
  },
  {
    // node-red-node-test-helper and node:test callbacks are loosely typed; keep tests strict on logic, lenient on `any`.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // `let server: Server` is assigned in before() and stopped with `server?.stop()` in after(): the guard
      // is what runs when before() failed half-way, although the declared type says it cannot be needed.
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ignores: ['nodes/*/editor.js'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // Editor scripts (nodes/<node>/editor.js) run in the Node-RED editor page, as classic scripts, not in
    // Node.js: the browser's globals and the editor's RED and jQuery. The build inlines each into its node's HTML.
    files: ['nodes/*/editor.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { ...globals.browser, RED: 'readonly', $: 'readonly' },
    },
  },
);

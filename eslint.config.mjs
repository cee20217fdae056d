// Lint rules for the whole tree, and the three boundaries that keep the data flow readable:
// src/ creates no instruments, src/protocol/ imports no OpenTelemetry (nor transport), and
// otel/ touches no HTTP and nothing in src/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const INSTRUMENT_FACTORIES =
  'createCounter|createHistogram|createUpDownCounter|createGauge|createObservableGauge|createObservableCounter|createObservableUpDownCounter';

export default tseslint.config(
  { ignores: ['dist/**', 'dist-*/**', '.build/**', 'node_modules/**', 'grafana/**', 'prometheus/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        __dirname: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        fetch: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        TextDecoder: 'readonly',
        TextEncoder: 'readonly',
        performance: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
        require: 'readonly',
        module: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'off',
    },
  },
  {
    // The console's page script runs in the browser, as a plain script (no modules, no build).
    files: ['src/console/assets/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly',
        document: 'readonly',
        sessionStorage: 'readonly',
        localStorage: 'readonly',
        matchMedia: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-unused-vars': 'error' },
  },
  {
    // The installed command and the start check are plain CommonJS scripts.
    files: ['bin/**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: `CallExpression[callee.property.name=/^(${INSTRUMENT_FACTORIES})$/]`, message: 'Instruments are created in otel/instruments.ts only.' },
      ],
    },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@opentelemetry/*', '**/otel/**'], message: 'Protocol parsers are free of telemetry.' },
            {
              group: [
                'node:http',
                'node:https',
                'node:net',
                'http',
                'https',
                'net',
                'http-proxy',
                '../proxy/*',
                '../request/*',
                '../*.js',
                '../app',
                '../llm-call',
                '../server',
              ],
              message: 'Protocol parsers are free of transport: bytes in, facts out.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['otel/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../src/**', '../src'], message: 'otel/ depends on nothing in src/; define the input type here.' },
            {
              group: ['node:http', 'node:https', 'node:net', 'http', 'https', 'net', 'koa', '@koa/router', 'http-proxy'],
              message: 'otel/ touches no HTTP; return data for src/ to serve.',
            },
          ],
        },
      ],
    },
  },
);

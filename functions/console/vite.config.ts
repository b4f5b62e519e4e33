import { defineConfig } from 'vite';

/**
 * The web console, built by `npm run build:console` (`vite build functions/console`) into
 * functions/console/dist, which the API serves at /console (functions/http/routes/console.ts).
 * Everything is bundled: the page loads nothing from elsewhere at run time.
 */
export default defineConfig({
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    target: 'es2022',
    // Hashed file names under assets/ are what the server marks immutable.
    assetsDir: 'assets',
    emptyOutDir: true,
    reportCompressedSize: false,
  },
});

// Preloaded (node --expose-gc --import) into both servers the bench measures, so their idle RSS is read after a
// full collection: start-up garbage (module loading, and tsx's compiling for the baseline) would otherwise be
// counted as idle, be collected once the sessions arrive, and make a small fleet's per-connection memory come
// out near zero or below it. Plain JavaScript, so the manager can load it from dist/ without tsx.
process.on("SIGURG", () => {
  globalThis.gc?.();
});

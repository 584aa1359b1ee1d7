// Injected into the CLI's bundle for the `performance` global (scripts/bundle-cli.mjs): node
// loads its perf_hooks modules on the global's first use, ~2 ms of every healthcheck, for the
// one method the bundled code calls. Durations only: the origin is arbitrary, as performance.now()'s
// is to its callers.
export const performance = { now: () => Number(process.hrtime.bigint()) / 1e6 };

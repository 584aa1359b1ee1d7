/**
 * The subcommands that get a start-up cache of their own (see src/cli/start-up-cache.ts); every other
 * invocation (help, version, a usage error) shares the `default` one. The loader reads this
 * list before the CLI is loaded, so it lives apart from the commander program.
 */
export const CACHED_COMMANDS = ['ping-redis', 'ping-postgres', 'ensure-schema', 'smoke'] as const;

/**
 * The start-up cache an invocation uses: its subcommand's own, else `default`; none for
 * `warm-cache`, which makes the others and would only leave one of its own in the user's cache.
 */
export function cacheNameFor(argv: readonly string[]): string | undefined {
  const subcommand = argv[2];
  if (subcommand === 'warm-cache') return undefined;
  return (CACHED_COMMANDS as readonly string[]).includes(subcommand ?? '')
    ? (subcommand as string)
    : 'default';
}

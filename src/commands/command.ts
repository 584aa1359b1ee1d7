import type { Report } from '../checks.js';
import type { Config, Needs } from '../config.js';

/** What every subcommand file exports: its name for commander, and its work. */
export interface BanshoCommand {
  name: string;
  summary: string;
  /** Which servers it talks to: only their settings are required and validated. */
  needs: Needs;
  /** What makes it warn, in the words of its `--strict` help; absent for a command that never warns. */
  warnings?: string;
  /** Flags of this command alone, as commander takes them: [flags, description]. */
  flags?: readonly (readonly [string, string])[];
  /** Runs every check once, each within `config.timeoutMs`; never throws for a failed check. */
  run(config: Config, signal: AbortSignal): Promise<Report>;
}

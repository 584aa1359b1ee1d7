import type { Needs } from '../../config/load.js';
import type { MakeReport } from '../../engine/reports.js';

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
  /** Its report, made by the engine: every check once, each within `config.timeoutMs`. */
  run: MakeReport;
}

/**
 * A Dockerfile read as Docker reads it, for tests that cannot build it (no Docker engine runs
 * where they do): instructions with their line continuations joined, exec forms parsed, and
 * the build's stages.
 */

export interface Instruction {
  /** Upper-case: FROM, RUN, COPY, … */
  keyword: string;
  /** Everything after the keyword, continuations joined with a space. */
  args: string;
  /** The exec form (`["bansho", "smoke"]`) parsed, when the arguments are one. */
  exec?: string[];
  /** 1-based line of the keyword. */
  line: number;
}

export interface Stage {
  /** The image, with the ARGs declared before the first FROM substituted. */
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Parses instructions; comments and parser directives (`# syntax=…`) are dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const start = index;
    let logical = lines[index] as string;
    if (/^\s*(#|$)/.test(logical)) continue;
    // A trailing backslash continues the instruction; comment lines inside it are skipped.
    while (/\\\s*$/.test(logical) && index + 1 < lines.length) {
      logical = logical.replace(/\\\s*$/, '');
      const next = lines[++index] as string;
      if (!/^\s*#/.test(next)) logical += ` ${next.trim()}`;
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(logical);
    if (!match) throw new Error(`Dockerfile line ${start + 1}: not an instruction: ${logical}`);
    const instruction: Instruction = {
      keyword: (match[1] as string).toUpperCase(),
      args: (match[2] as string).trim(),
      line: start + 1,
    };
    if (instruction.args.startsWith('[')) instruction.exec = JSON.parse(instruction.args) as string[];
    instructions.push(instruction);
  }
  return instructions;
}

/** The build's stages, in order, with `${ARG}` in FROM replaced by the ARG's default. */
export function parseStages(text: string): Stage[] {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of parseDockerfile(text)) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args
        .replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced, bare) => args.get(braced ?? bare) ?? '')
        .split(/\s+/);
      stages.push({
        from: image as string,
        ...(as?.toUpperCase() === 'AS' && name ? { name } : {}),
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG')
        throw new Error(`line ${instruction.line}: only ARG may precede FROM`);
      const [name, value = ''] = instruction.args.split('=', 2) as [string, string?];
      args.set(name, value);
    } else {
      (stages.at(-1) as Stage).instructions.push(instruction);
    }
  }
  return stages;
}

/** A RUN instruction's shell command, without its BuildKit flags (`--mount=…`, `--network=…`). */
export function runCommand(instruction: Instruction): string {
  return instruction.args.replace(/^(--[a-z-]+=\S+\s+)+/, '');
}

/** A duration as Docker and compose write them (Go's: `1m30s`, `10s`, `500ms`), in milliseconds. */
export function dockerDurationMs(text: string): number {
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)];
  if (parts.map((part) => part[0]).join('') !== text) throw new Error(`not a Docker duration: ${text}`);
  return parts.reduce((sum, [, amount, u]) => sum + Number(amount) * unit[u as keyof typeof unit], 0);
}

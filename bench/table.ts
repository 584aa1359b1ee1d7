/** What both benches print: Markdown tables, so that their output can go into the README as it is. */

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    `| ${header.map((_, column) => (column === 0 ? (cells[column] ?? '').padEnd(widths[column] ?? 0) : (cells[column] ?? '').padStart(widths[column] ?? 0))).join(' | ')} |`;
  console.log(line(header));
  console.log(
    `|${widths.map((width, column) => (column === 0 ? `${'-'.repeat(width + 1)}-` : `-${'-'.repeat(width)}:`)).join('|')}|`,
  );
  for (const row of rows) console.log(line(row));
}

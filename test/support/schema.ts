/**
 * What ensure-schema does to an empty database, written out by hand (not derived from the
 * spec, so that a change to the spec is noticed by the tests), and how a report's changes read.
 */
export const ALL_CHANGES = [
  'create table api_keys',
  'create table audit_events',
  'create index audit_events_ts_idx',
  'create index audit_events_api_key_id_ts_idx',
  'create table bansho_schema_version',
  'record schema version 1',
];

/** `changes` of a report as people read them: "create table api_keys". */
export function described(
  changes: readonly { action: string; object: string }[] | undefined,
): string[] | undefined {
  return changes?.map((change) => `${change.action} ${change.object}`);
}

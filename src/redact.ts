/** What a password is replaced with wherever a URL is shown. */
export const MASK = '***';

/**
 * Returns the URL with its password masked (`redis://:***@host:6379`). Works on text that
 * does not parse as a URL too, since a malformed URL is exactly what an error message shows.
 */
export function redactUrl(text: string): string {
  // Userinfo runs to the LAST `@`: a password typed without percent-encoding may hold `@`, `/` or `?`,
  // and masking too much of a rare path is better than showing a password.
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)(.*)@/is, (_whole, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon === -1 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:${MASK}@`;
  });
}

/**
 * A value the user typed, quoted for a message with anything that may be credentials removed:
 * everything before its last `@` (a URL's userinfo, or `user:password@host` typed without a
 * scheme). A typed value is quoted only through here.
 */
export function quoteTyped(text: string): string {
  const at = text.lastIndexOf('@');
  if (at === -1) return JSON.stringify(text);
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? '';
  return JSON.stringify(`${scheme}${MASK}${text.slice(at)}`);
}

/** Characters that end a token of a driver's message: a password is masked where it is a whole token. */
const DELIMITER = String.raw`\s'"\x60()\[\]{}<>,;:=@/?#&`;

/**
 * Masks every known secret in `text`, a driver's or server's own words (an error reply, a
 * socket error), before it is put into a message: they may quote what bansho sent, the
 * password included. Only whole tokens are masked, so that a password such as `a` or `fail`
 * leaves "failed" and "a primary"... as they are; never apply this to bansho's own words.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    const escaped = secret.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
    result = result.replace(new RegExp(`(?<=^|[${DELIMITER}])${escaped}(?=$|[${DELIMITER}])`, 'g'), MASK);
  }
  return result;
}

/**
 * The forms in which a password may appear in a driver's text: as bansho sent it, and
 * percent-encoded as in a URL. Longest first, so that a form containing another is masked whole.
 */
export function secretForms(password: string | undefined): string[] {
  if (!password) return [];
  return [...new Set([password, encodeURIComponent(password)])].sort((a, b) => b.length - a.length);
}

/** Masks the password of `target` in a driver's or server's text (see scrubSecrets). */
export function scrubPassword(text: string, target: { password?: string | undefined }): string {
  return scrubSecrets(text, secretForms(target.password));
}

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
 * Masks the password of every URL inside free text, such as commander's
 * "unknown option '--redis-url=redis://:pw@host'", where no parsed URL is at hand.
 */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:@/'"]*:)[^\s'"]*@/gi, `$1${MASK}@`);
}

/**
 * Replaces every known secret in `text` with the mask: the last line of defence for
 * messages written by drivers, which may quote a password in ways no URL rule foresees.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    result = result.split(secret).join(MASK);
  }
  return result;
}

/**
 * The forms in which a password from a URL may appear in text: as typed, decoded, encoded,
 * and escaped inside a JSON string (a quote or backslash in it).
 */
export function secretForms(password: string | undefined): string[] {
  if (!password) return [];
  const forms = new Set([password, encodeURIComponent(password), JSON.stringify(password).slice(1, -1)]);
  try {
    forms.add(decodeURIComponent(password));
  } catch {
    // Not valid percent-encoding: the raw form above is all there is.
  }
  // Longest first, so that a form containing another is masked whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

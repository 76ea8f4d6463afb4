// POSIX single quoting for words that go into generated shell scripts (/etc/rc). Inside single quotes
// nothing is special, newlines included, so no image value can run code; a quote becomes '\''.
// Unlike bash's ${x@Q} this never emits $'…', which dash (Debian's /bin/sh) did not support before 0.5.12.

/** One shell word. NUL cannot be passed in an argument at all, so it is dropped. */
export function shellQuote (word: string): string {
  return `'${word.replace(/\0/g, '').replace(/'/g, "'\\''")}'`
}

/** Several words, space-separated (empty string for none). */
export const shellQuoteAll = (words: readonly string[]): string => words.map(shellQuote).join(' ')

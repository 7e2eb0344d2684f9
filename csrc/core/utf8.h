/*
 * utf8.h - incremental UTF-8 validation (RFC 3629), for text messages whose
 * bytes arrive in pieces (RFC 6455 section 8.1).
 *
 * The validator rejects as soon as a byte makes the text invalid, even in
 * the middle of a sequence (e.g. 0xED 0xA0 is a surrogate and fails at once).
 */
#ifndef H2WS_UTF8_H
#define H2WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

enum { H2WS_UTF8_ACCEPT = 0, H2WS_UTF8_REJECT = 1 };

/*
 * Feeds `len` bytes (borrowed) to the validator whose state is `state`
 * (start with H2WS_UTF8_ACCEPT). Returns the new state: H2WS_UTF8_REJECT
 * once invalid (sticky), H2WS_UTF8_ACCEPT at a character boundary, another
 * value in the middle of a character.
 */
uint32_t h2ws_utf8_feed(uint32_t state, const uint8_t *data, size_t len);

/* 1 if the whole of data[0..len) is valid UTF-8, else 0. */
static inline int h2ws_utf8_valid(const uint8_t *data, size_t len) {
  return h2ws_utf8_feed(H2WS_UTF8_ACCEPT, data, len) == H2WS_UTF8_ACCEPT;
}

#endif

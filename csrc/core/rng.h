/*
 * rng.h - masking keys from a CSPRNG (RFC 6455 section 5.3 requires them to
 * be unpredictable). Keys are taken from a small pool refilled with
 * OpenSSL's RAND_bytes, so a key costs no system call.
 */
#ifndef H2WS_RNG_H
#define H2WS_RNG_H

#include <stdint.h>

#define H2WS_RNG_POOL 256

typedef struct {
  uint8_t pool[H2WS_RNG_POOL];
  unsigned used; /* bytes of pool already handed out */
} h2ws_rng;

/* Caller-owned; starts empty (first key refills). */
void h2ws_rng_init(h2ws_rng *rng);
/* Wipes the pool. */
void h2ws_rng_free(h2ws_rng *rng);

/* Writes 4 fresh random bytes to `key`. Returns 0 or H2WS_ERR_INTERNAL
 * when the CSPRNG fails (key left unset). */
int h2ws_rng_mask_key(h2ws_rng *rng, uint8_t key[4]);

#endif

#include "rng.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "error.h"

void h2ws_rng_init(h2ws_rng *rng) { rng->used = H2WS_RNG_POOL; }

void h2ws_rng_free(h2ws_rng *rng) {
  OPENSSL_cleanse(rng->pool, sizeof rng->pool);
  rng->used = H2WS_RNG_POOL;
}

int h2ws_rng_mask_key(h2ws_rng *rng, uint8_t key[4]) {
  if (rng->used + 4 > H2WS_RNG_POOL) {
    if (RAND_bytes(rng->pool, (int)sizeof rng->pool) != 1)
      return H2WS_ERR_INTERNAL;
    rng->used = 0;
  }
  memcpy(key, rng->pool + rng->used, 4);
  /* A handed-out key is not kept in memory. */
  memset(rng->pool + rng->used, 0, 4);
  rng->used += 4;
  return 0;
}

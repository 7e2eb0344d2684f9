#include "mask.h"

#include <string.h>

/* The key rotated so that its byte 0 applies to data[0]. */
static uint32_t rotated_key(const uint8_t key[4], uint64_t phase) {
  uint8_t k[4];
  for (unsigned i = 0; i < 4; i++)
    k[i] = key[(phase + i) & 3];
  uint32_t w;
  memcpy(&w, k, 4);
  return w;
}

/* Byte-wise tail; `kw` is the rotated key, `i` a multiple of 4 from start. */
static void mask_tail(uint8_t *dst, const uint8_t *src, size_t i, size_t len,
                      uint32_t kw) {
  uint8_t k[4];
  memcpy(k, &kw, 4);
  for (; i < len; i++)
    dst[i] = src[i] ^ k[i & 3];
}

/* One body per vector width; vector_size is a GCC/Clang extension that
 * compiles to the widest instructions the function's target allows. */
#define DEFINE_MASK_VEC(name, WIDTH, ATTR)                                    \
  ATTR static void name(uint8_t *dst, const uint8_t *src, size_t len,         \
                        uint32_t kw) {                                        \
    typedef uint8_t vec __attribute__((vector_size(WIDTH)));                  \
    uint8_t kb[WIDTH];                                                        \
    for (unsigned j = 0; j < (WIDTH) / 4; j++)                                \
      memcpy(kb + 4 * j, &kw, 4);                                             \
    vec kv;                                                                   \
    memcpy(&kv, kb, WIDTH);                                                   \
    size_t i = 0;                                                             \
    for (; i + 4 * (WIDTH) <= len; i += 4 * (WIDTH)) {                        \
      vec a, b, c, d;                                                         \
      memcpy(&a, src + i, WIDTH);                                             \
      memcpy(&b, src + i + (WIDTH), WIDTH);                                   \
      memcpy(&c, src + i + 2 * (WIDTH), WIDTH);                               \
      memcpy(&d, src + i + 3 * (WIDTH), WIDTH);                               \
      a ^= kv;                                                                \
      b ^= kv;                                                                \
      c ^= kv;                                                                \
      d ^= kv;                                                                \
      memcpy(dst + i, &a, WIDTH);                                             \
      memcpy(dst + i + (WIDTH), &b, WIDTH);                                   \
      memcpy(dst + i + 2 * (WIDTH), &c, WIDTH);                               \
      memcpy(dst + i + 3 * (WIDTH), &d, WIDTH);                               \
    }                                                                         \
    for (; i + (WIDTH) <= len; i += (WIDTH)) {                                \
      vec a;                                                                  \
      memcpy(&a, src + i, WIDTH);                                             \
      a ^= kv;                                                                \
      memcpy(dst + i, &a, WIDTH);                                             \
    }                                                                         \
    for (; i + 8 <= len; i += 8) {                                            \
      uint64_t w, k8 = ((uint64_t)kw << 32) | kw;                             \
      memcpy(&w, src + i, 8);                                                 \
      w ^= k8;                                                                \
      memcpy(dst + i, &w, 8);                                                 \
    }                                                                         \
    mask_tail(dst, src, i, len, kw);                                          \
  }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
DEFINE_MASK_VEC(mask_avx2, 32, __attribute__((target("avx2"))))
DEFINE_MASK_VEC(mask_sse2, 16, )

static int have_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

void h2ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                    const uint8_t key[4], uint64_t phase) {
  uint32_t kw = rotated_key(key, phase);
  if (len < 64) {
    size_t i = 0;
    uint64_t k8 = ((uint64_t)kw << 32) | kw;
    for (; i + 8 <= len; i += 8) {
      uint64_t w;
      memcpy(&w, src + i, 8);
      w ^= k8;
      memcpy(dst + i, &w, 8);
    }
    mask_tail(dst, src, i, len, kw);
  } else if (have_avx2()) {
    mask_avx2(dst, src, len, kw);
  } else {
    mask_sse2(dst, src, len, kw);
  }
}

const char *h2ws_mask_impl(void) { return have_avx2() ? "avx2" : "sse2"; }

#else
DEFINE_MASK_VEC(mask_word, 16, )

void h2ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                    const uint8_t key[4], uint64_t phase) {
  mask_word(dst, src, len, rotated_key(key, phase));
}

const char *h2ws_mask_impl(void) { return "word"; }
#endif

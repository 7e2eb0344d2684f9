/*
 * mask.c - RFC 6455 section 5.3 masking; see mask.h.
 *
 * Work is done on a "key word": the 4-byte key rotated so that its byte j
 * (in memory order) masks data[j]. Repeating it fills a vector of any
 * width, and skipping n bytes of data rotates it by n % 4 bytes.
 *
 * Shape of every kernel: long buffers first mask a few bytes so that the
 * stores of the main loop are aligned (split stores cost up to 2x), then
 * run four vectors per iteration, then one; the last partial vector is
 * done by an overlapping full vector when dst and src are distinct (bytes
 * already written are simply rewritten from src), else by smaller steps.
 */
#include "mask.h"

#include <string.h>

/* Below this size the dst-alignment prologue costs more than it saves. */
#define ALIGN_MIN 256

/* The key word for the data n bytes further on. */
static inline uint32_t key_skip(uint32_t kw, size_t n) {
  unsigned r = (unsigned)(n & 3) * 8;
  if (r == 0)
    return kw;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return (kw >> r) | (kw << (32 - r));
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (kw << r) | (kw >> (32 - r));
#else
  uint8_t k[4], o[4];
  memcpy(k, &kw, 4);
  for (unsigned i = 0; i < 4; i++)
    o[i] = k[(i + n) & 3];
  memcpy(&kw, o, 4);
  return kw;
#endif
}

/* The key word for data whose first byte is at offset `phase`. */
static inline uint32_t key_word(const uint8_t key[4], uint64_t phase) {
  uint32_t w;
  memcpy(&w, key, 4);
  return key_skip(w, (size_t)(phase & 3));
}

/* 8, then 4, then 1 byte at a time; safe in place. */
static inline void mask_words(uint8_t *dst, const uint8_t *src, size_t len, uint32_t kw) {
  uint64_t k8 = ((uint64_t)kw << 32) | kw;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k8;
    memcpy(dst + i, &w, 8);
  }
  if (i + 4 <= len) {
    uint32_t w;
    memcpy(&w, src + i, 4);
    w ^= kw;
    memcpy(dst + i, &w, 4);
    i += 4;
  }
  uint8_t k[4];
  memcpy(k, &kw, 4);
  for (; i < len; i++)
    dst[i] = src[i] ^ k[i & 3];
}

/* 4 <= len < 16 with dst != src: two overlapping words cover it. */
static inline void mask_small_copy(uint8_t *dst, const uint8_t *src, size_t len, uint32_t kw) {
  if (len >= 8) {
    uint64_t a, b, ka = ((uint64_t)kw << 32) | kw, kb;
    uint32_t kwb = key_skip(kw, len - 8);
    kb = ((uint64_t)kwb << 32) | kwb;
    memcpy(&a, src, 8);
    memcpy(&b, src + len - 8, 8);
    a ^= ka;
    b ^= kb;
    memcpy(dst, &a, 8);
    memcpy(dst + len - 8, &b, 8);
  } else {
    uint32_t a, b;
    memcpy(&a, src, 4);
    memcpy(&b, src + len - 4, 4);
    a ^= kw;
    b ^= key_skip(kw, len - 4);
    memcpy(dst, &a, 4);
    memcpy(dst + len - 4, &b, 4);
  }
}

/*
 * One kernel per vector width. vector_size is a GCC/Clang extension that
 * compiles to the widest instructions the function's target allows.
 * TAIL does what is left (less than WIDTH bytes) in place: the kernel of
 * the next width down, or mask_words for the narrowest.
 */
#define DEFINE_MASK_VEC(name, WIDTH, ATTR, TAIL)                                                   \
  ATTR static void name(uint8_t *dst, const uint8_t *src, size_t len, uint32_t kw) {              \
    typedef uint8_t vec __attribute__((vector_size(WIDTH)));                                       \
    if (len >= ALIGN_MIN) {                                                                        \
      size_t head = (size_t)(-(uintptr_t)dst) & ((WIDTH)-1);                                       \
      mask_words(dst, src, head, kw);                                                              \
      kw = key_skip(kw, head);                                                                     \
      dst += head;                                                                                 \
      src += head;                                                                                 \
      len -= head;                                                                                 \
    }                                                                                              \
    uint32_t kb[(WIDTH) / 4];                                                                      \
    for (unsigned j = 0; j < (WIDTH) / 4; j++)                                                     \
      kb[j] = kw;                                                                                  \
    vec kv;                                                                                        \
    memcpy(&kv, kb, WIDTH);                                                                        \
    size_t i = 0;                                                                                  \
    for (; i + 4 * (WIDTH) <= len; i += 4 * (WIDTH)) {                                             \
      vec a, b, c, d;                                                                              \
      memcpy(&a, src + i, WIDTH);                                                                  \
      memcpy(&b, src + i + (WIDTH), WIDTH);                                                        \
      memcpy(&c, src + i + 2 * (WIDTH), WIDTH);                                                    \
      memcpy(&d, src + i + 3 * (WIDTH), WIDTH);                                                    \
      a ^= kv;                                                                                     \
      b ^= kv;                                                                                     \
      c ^= kv;                                                                                     \
      d ^= kv;                                                                                     \
      memcpy(dst + i, &a, WIDTH);                                                                  \
      memcpy(dst + i + (WIDTH), &b, WIDTH);                                                        \
      memcpy(dst + i + 2 * (WIDTH), &c, WIDTH);                                                    \
      memcpy(dst + i + 3 * (WIDTH), &d, WIDTH);                                                    \
    }                                                                                              \
    for (; i + (WIDTH) <= len; i += (WIDTH)) {                                                     \
      vec a;                                                                                       \
      memcpy(&a, src + i, WIDTH);                                                                  \
      a ^= kv;                                                                                     \
      memcpy(dst + i, &a, WIDTH);                                                                  \
    }                                                                                              \
    if (i == len)                                                                                  \
      return;                                                                                      \
    if (dst != src && len >= (WIDTH)) {                                                            \
      size_t j = len - (WIDTH);                                                                    \
      uint32_t kbj[(WIDTH) / 4], kwj = key_skip(kw, j);                                            \
      for (unsigned q = 0; q < (WIDTH) / 4; q++)                                                   \
        kbj[q] = kwj;                                                                              \
      vec a, kvj;                                                                                  \
      memcpy(&kvj, kbj, WIDTH);                                                                    \
      memcpy(&a, src + j, WIDTH);                                                                  \
      a ^= kvj;                                                                                    \
      memcpy(dst + j, &a, WIDTH);                                                                  \
      return;                                                                                      \
    }                                                                                              \
    TAIL(dst + i, src + i, len - i, kw);                                                           \
  }

/* The portable kernel: 16-byte vectors (SSE2 on x86-64, NEON on arm64). */
DEFINE_MASK_VEC(mask_vec16, 16, , mask_words)

/*
 * Fewer than 64 bytes, always inlined into h2ws_mask_copy ahead of the
 * dispatch: small frames are the common case, and for them a call or two
 * and the CPU check would cost as much as the masking. A copy is done in
 * overlapping 16-byte vectors or words, in place in words.
 */
__attribute__((always_inline)) static inline void mask_short(uint8_t *dst, const uint8_t *src,
                                                              size_t len, uint32_t kw) {
  typedef uint8_t v16 __attribute__((vector_size(16)));
  if (dst == src || len < 4) {
    mask_words(dst, src, len, kw);
  } else if (len < 16) {
    mask_small_copy(dst, src, len, kw);
  } else {
    uint32_t kb[4] = {kw, kw, kw, kw};
    v16 kv, a;
    memcpy(&kv, kb, 16);
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
      memcpy(&a, src + i, 16);
      a ^= kv;
      memcpy(dst + i, &a, 16);
    }
    if (i < len) {
      size_t j = len - 16;
      uint32_t kwj = key_skip(kw, j);
      uint32_t kbj[4] = {kwj, kwj, kwj, kwj};
      memcpy(&kv, kbj, 16);
      memcpy(&a, src + j, 16);
      a ^= kv;
      memcpy(dst + j, &a, 16);
    }
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* The tail kernel is compiled for AVX2 too: calling SSE code with the upper
 * halves of the ymm registers in use costs far more than the tail itself. */
DEFINE_MASK_VEC(mask_avx2_tail, 16, __attribute__((target("avx2"))), mask_words)
DEFINE_MASK_VEC(mask_avx2, 32, __attribute__((target("avx2"))), mask_avx2_tail)

/* One 64-byte vector of `kw` xor src[0..64) stored to dst[0..64). */
#define XOR64(dst, src, kv)                                                                       \
  _mm512_storeu_si512((dst), _mm512_xor_si512(_mm512_loadu_si512(src), (kv)))

/*
 * AVX-512, for len >= 64. In place, masked loads and stores do the
 * unaligned head and the tail in one instruction each (they never touch the
 * bytes the mask excludes, so they cannot fault past the buffer). A copy
 * uses full overlapping vectors instead, like the other kernels: the parser
 * reads what it has just unmasked (UTF-8 validation), and a load cannot be
 * forwarded from a masked store, so it would wait for the store to retire.
 */
__attribute__((target("avx512f,avx512bw"))) static void
mask_avx512(uint8_t *dst, const uint8_t *src, size_t len, uint32_t kw) {
  int copy = dst != src; /* len >= 64 */
  __m512i kv = _mm512_set1_epi32((int)kw);
  if (len >= ALIGN_MIN) {
    size_t head = (size_t)(-(uintptr_t)dst) & 63;
    if (head) {
      if (copy) {
        XOR64(dst, src, kv);
      } else {
        __mmask64 m = (1ULL << head) - 1;
        __m512i a = _mm512_maskz_loadu_epi8(m, src);
        _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(a, kv));
      }
      kw = key_skip(kw, head);
      kv = _mm512_set1_epi32((int)kw);
      dst += head;
      src += head;
      len -= head;
    }
  }
  size_t i = 0;
  for (; i + 256 <= len; i += 256) {
    XOR64(dst + i, src + i, kv);
    XOR64(dst + i + 64, src + i + 64, kv);
    XOR64(dst + i + 128, src + i + 128, kv);
    XOR64(dst + i + 192, src + i + 192, kv);
  }
  for (; i + 64 <= len; i += 64)
    XOR64(dst + i, src + i, kv);
  if (i == len)
    return;
  if (copy) {
    size_t j = len - 64; /* len >= 64 here */
    XOR64(dst + j, src + j, _mm512_set1_epi32((int)key_skip(kw, j)));
  } else {
    __mmask64 m = (1ULL << (len - i)) - 1; /* len - i < 64 */
    __m512i a = _mm512_maskz_loadu_epi8(m, src + i);
    _mm512_mask_storeu_epi8(dst + i, m, _mm512_xor_si512(a, kv));
  }
}
#undef XOR64

/*
 * 512-bit instructions slow the whole core down on the first AVX-512 CPUs
 * (Skylake-SP, Cascade Lake); the kernel is used only where they do not:
 * VBMI2 marks the later generations (Ice Lake and newer, Zen 4).
 */
static int have_avx512(void) {
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi2");
}

/* __builtin_cpu_supports reads what libgcc's constructor detected; it needs
 * __builtin_cpu_init only before constructors run (h2ws_mask_impl calls it
 * anyway, as it is cheap and called rarely). */
void h2ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                    uint64_t phase) {
  uint32_t kw = key_word(key, phase);
  if (len < 64)
    mask_short(dst, src, len, kw);
  else if (have_avx512())
    mask_avx512(dst, src, len, kw);
  else if (__builtin_cpu_supports("avx2"))
    mask_avx2(dst, src, len, kw);
  else
    mask_vec16(dst, src, len, kw);
}

const char *h2ws_mask_impl(void) {
  __builtin_cpu_init();
  return have_avx512() ? "avx512" : __builtin_cpu_supports("avx2") ? "avx2" : "sse2";
}

#else

void h2ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                    uint64_t phase) {
  uint32_t kw = key_word(key, phase);
  if (len < 64)
    mask_short(dst, src, len, kw);
  else
    mask_vec16(dst, src, len, kw);
}

const char *h2ws_mask_impl(void) { return "word"; }
#endif

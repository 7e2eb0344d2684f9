/*
 * mask.h - RFC 6455 section 5.3 payload masking.
 *
 * The masking key is applied byte-wise as key[(phase + i) % 4]; `phase` is
 * the offset of data[0] within the frame payload, so a payload may be
 * (un)masked in pieces. The kernel is chosen at run time on x86-64:
 * AVX-512 where it does not slow the core down (AVX512-BW with VBMI2), else
 * AVX2, else SSE2; other machines use 16-byte GCC/Clang vectors.
 */
#ifndef H2WS_MASK_H
#define H2WS_MASK_H

#include <stddef.h>
#include <stdint.h>

/* dst[i] = src[i] ^ key[(phase + i) % 4] for i < len. dst may equal src
 * (in place) but must not otherwise overlap it. All pointers borrowed. */
void h2ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                    const uint8_t key[4], uint64_t phase);

/* In-place form of h2ws_mask_copy. */
static inline void h2ws_mask_apply(uint8_t *data, size_t len,
                                   const uint8_t key[4], uint64_t phase) {
  h2ws_mask_copy(data, data, len, key, phase);
}

/* Name of the implementation selected on this CPU: "avx512", "avx2", "sse2"
 * or "word" (not x86-64). Static string. */
const char *h2ws_mask_impl(void);

#endif

#include "utf8.h"

#include <string.h>

/* Byte classes: which bytes may follow decides the class. */
enum {
  C_ASCII,  /* 00..7F */
  C_80_8F,  /* continuation, low */
  C_90_9F,  /* continuation, middle */
  C_A0_BF,  /* continuation, high */
  C_BAD,    /* C0, C1, F5..FF: never valid */
  C_LEAD2,  /* C2..DF */
  C_E0,     /* E0: next must be A0..BF (no overlongs) */
  C_LEAD3,  /* E1..EC, EE..EF */
  C_ED,     /* ED: next must be 80..9F (no surrogates) */
  C_F0,     /* F0: next must be 90..BF (no overlongs) */
  C_LEAD4,  /* F1..F3 */
  C_F4,     /* F4: next must be 80..8F (<= U+10FFFF) */
  N_CLASSES
};

static const uint8_t byte_class[256] = {
    [0x00 ... 0x7F] = C_ASCII, [0x80 ... 0x8F] = C_80_8F,
    [0x90 ... 0x9F] = C_90_9F, [0xA0 ... 0xBF] = C_A0_BF,
    [0xC0 ... 0xC1] = C_BAD,   [0xC2 ... 0xDF] = C_LEAD2,
    [0xE0] = C_E0,             [0xE1 ... 0xEC] = C_LEAD3,
    [0xED] = C_ED,             [0xEE ... 0xEF] = C_LEAD3,
    [0xF0] = C_F0,             [0xF1 ... 0xF3] = C_LEAD4,
    [0xF4] = C_F4,             [0xF5 ... 0xFF] = C_BAD,
};

/* States: ACCEPT and REJECT as in the header, then what is still needed. */
enum { S_OK, S_BAD, S_NEED1, S_NEED2, S_NEED3, S_E0, S_ED, S_F0, S_F4, N_STATES };

#define X S_BAD
static const uint8_t next_state[N_STATES][N_CLASSES] = {
    /*           ASCII  80-8F   90-9F   A0-BF   BAD LEAD2    E0    LEAD3    ED    F0    LEAD4    F4 */
    [S_OK] =    {S_OK,  X,      X,      X,      X,  S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    [S_BAD] =   {X,     X,      X,      X,      X,  X,       X,    X,       X,    X,    X,       X},
    [S_NEED1] = {X,     S_OK,   S_OK,   S_OK,   X,  X,       X,    X,       X,    X,    X,       X},
    [S_NEED2] = {X,     S_NEED1, S_NEED1, S_NEED1, X, X,     X,    X,       X,    X,    X,       X},
    [S_NEED3] = {X,     S_NEED2, S_NEED2, S_NEED2, X, X,     X,    X,       X,    X,    X,       X},
    [S_E0] =    {X,     X,      X,      S_NEED1, X, X,       X,    X,       X,    X,    X,       X},
    [S_ED] =    {X,     S_NEED1, S_NEED1, X,    X,  X,       X,    X,       X,    X,    X,       X},
    [S_F0] =    {X,     X,      S_NEED2, S_NEED2, X, X,      X,    X,       X,    X,    X,       X},
    [S_F4] =    {X,     S_NEED2, X,     X,      X,  X,       X,    X,       X,    X,    X,       X},
};
#undef X

uint32_t h2ws_utf8_feed(uint32_t state, const uint8_t *data, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (state == S_OK) {
      /* ASCII fast path: 16, then 8 bytes at a time. */
      while (i + 16 <= len) {
        uint64_t a, b;
        memcpy(&a, data + i, 8);
        memcpy(&b, data + i + 8, 8);
        if ((a | b) & 0x8080808080808080ULL)
          break;
        i += 16;
      }
      while (i + 8 <= len) {
        uint64_t a;
        memcpy(&a, data + i, 8);
        if (a & 0x8080808080808080ULL)
          break;
        i += 8;
      }
      while (i < len && data[i] < 0x80)
        i++;
      if (i == len)
        break;
    }
    state = next_state[state][byte_class[data[i++]]];
    if (state == S_BAD)
      return H2WS_UTF8_REJECT;
  }
  return state;
}

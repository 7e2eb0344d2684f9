/*
 * frame.h - RFC 6455 section 5.2 frame headers: parse and serialize.
 */
#ifndef H2WS_FRAME_H
#define H2WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 section 5.2 and 11.8). */
enum {
  H2WS_OP_CONT = 0x0,
  H2WS_OP_TEXT = 0x1,
  H2WS_OP_BINARY = 0x2,
  H2WS_OP_CLOSE = 0x8,
  H2WS_OP_PING = 0x9,
  H2WS_OP_PONG = 0xA
};

/* Bits of the first header byte. */
enum { H2WS_FIN = 0x80, H2WS_RSV1 = 0x40, H2WS_RSV2 = 0x20, H2WS_RSV3 = 0x10 };

/* Largest header: 2 + 8 (64-bit length) + 4 (masking key). */
#define H2WS_FRAME_HEADER_MAX 14
/* Control frames carry at most this many payload bytes (section 5.5). */
#define H2WS_CONTROL_MAX 125

static inline int h2ws_opcode_is_control(unsigned opcode) { return (opcode & 0x8) != 0; }
static inline int h2ws_opcode_is_known(unsigned opcode) {
  return opcode <= H2WS_OP_BINARY || (opcode >= H2WS_OP_CLOSE && opcode <= H2WS_OP_PONG);
}

typedef struct {
  uint8_t fin;     /* 1 if FIN is set */
  uint8_t rsv;     /* RSV1..3 as in the first byte (mask 0x70) */
  uint8_t opcode;  /* 0..15 */
  uint8_t masked;  /* 1 if the MASK bit is set */
  uint8_t mask[4]; /* masking key when masked */
  uint64_t length; /* payload length */
} h2ws_frame_header;

/* Bytes a header takes for this payload length, masked or not. */
size_t h2ws_frame_header_size(uint64_t length, int masked);

/*
 * Writes a header to `out` (room for H2WS_FRAME_HEADER_MAX bytes), always
 * with the minimal length encoding. `rsv` is a mask of H2WS_RSV* bits.
 * `mask` (4 bytes, borrowed) sets the MASK bit and key; NULL for none.
 * Returns the number of bytes written.
 */
size_t h2ws_frame_header_write(uint8_t *out, int fin, unsigned rsv, unsigned opcode,
                               uint64_t length, const uint8_t *mask);

/*
 * Parses a header from the start of data[0..len) (borrowed).
 * Returns the header size (> 0) with *out filled, 0 if more bytes are
 * needed (nothing is kept: call again with more), or H2WS_ERR_PROTOCOL if
 * the 64-bit length has its most significant bit set (section 5.2).
 * Opcode, RSV and mask rules are the caller's (see ws.h).
 */
int h2ws_frame_header_parse(const uint8_t *data, size_t len, h2ws_frame_header *out);

#endif

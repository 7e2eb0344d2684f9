#include "frame.h"

#include <string.h>

#include "error.h"

size_t h2ws_frame_header_size(uint64_t length, int masked) {
  size_t n = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
  return n + (masked ? 4 : 0);
}

size_t h2ws_frame_header_write(uint8_t *out, int fin, unsigned rsv, unsigned opcode,
                               uint64_t length, const uint8_t *mask) {
  size_t n;
  out[0] = (uint8_t)((fin ? H2WS_FIN : 0) | (rsv & 0x70) | (opcode & 0x0F));
  uint8_t mbit = mask ? 0x80 : 0;
  if (length < 126) {
    out[1] = (uint8_t)(mbit | length);
    n = 2;
  } else if (length <= 0xFFFF) {
    out[1] = mbit | 126;
    out[2] = (uint8_t)(length >> 8);
    out[3] = (uint8_t)length;
    n = 4;
  } else {
    out[1] = mbit | 127;
    for (int i = 0; i < 8; i++)
      out[2 + i] = (uint8_t)(length >> (56 - 8 * i));
    n = 10;
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

int h2ws_frame_header_parse(const uint8_t *data, size_t len, h2ws_frame_header *out) {
  if (len < 2)
    return 0;
  unsigned b1 = data[1] & 0x7F;
  int masked = (data[1] & 0x80) != 0;
  size_t need = 2 + (b1 == 126 ? 2 : b1 == 127 ? 8 : 0) + (masked ? 4 : 0);
  if (len < need)
    return 0;
  uint64_t length;
  size_t p = 2;
  if (b1 < 126) {
    length = b1;
  } else if (b1 == 126) {
    length = ((uint64_t)data[2] << 8) | data[3];
    p = 4;
  } else {
    if (data[2] & 0x80)
      return H2WS_ERR_PROTOCOL;
    length = 0;
    for (int i = 0; i < 8; i++)
      length = (length << 8) | data[2 + i];
    p = 10;
  }
  out->fin = (data[0] & H2WS_FIN) != 0;
  out->rsv = data[0] & 0x70;
  out->opcode = data[0] & 0x0F;
  out->masked = (uint8_t)masked;
  out->length = length;
  if (masked)
    memcpy(out->mask, data + p, 4);
  else
    memset(out->mask, 0, 4);
  return (int)need;
}

#include "h1.h"

#include <openssl/evp.h>
#include <string.h>

#include "error.h"

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

int h2ws_h1_key_valid(const char *key, size_t len) {
  /* 16 bytes encode to 22 characters and "==". */
  if (len != 24 || key[22] != '=' || key[23] != '=')
    return 0;
  /* Like common decoders, non-zero unused bits in the last character are
   * tolerated: clients are not refused over a sloppy encoder. */
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(key[i]))
      return 0;
  return 1;
}

int h2ws_h1_accept(const char *key, size_t len, char out[H2WS_ACCEPT_LEN + 1]) {
  if (len > 256)
    return H2WS_ERR_INVALID_ARGUMENT;
  unsigned char buf[256 + sizeof GUID], digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  memcpy(buf, key, len);
  memcpy(buf + len, GUID, sizeof GUID - 1);
  if (!EVP_Digest(buf, len + sizeof GUID - 1, digest, &dlen, EVP_sha1(), NULL) || dlen != 20)
    return H2WS_ERR_INTERNAL;
  if (EVP_EncodeBlock((unsigned char *)out, digest, 20) != H2WS_ACCEPT_LEN)
    return H2WS_ERR_INTERNAL;
  out[H2WS_ACCEPT_LEN] = 0;
  return 0;
}

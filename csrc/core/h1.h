/*
 * h1.h - the RFC 6455 section 4 opening handshake pieces over HTTP/1.1.
 *
 * Request heads are parsed by a maintained HTTP/1.1 parser (llhttp through
 * httptools, in the asyncio layer); this file computes and checks the
 * handshake's keys, with OpenSSL's SHA-1.
 */
#ifndef H2WS_H1_H
#define H2WS_H1_H

#include <stddef.h>

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1), without NUL. */
#define H2WS_ACCEPT_LEN 28

/*
 * Returns 1 if `key` (borrowed) is a valid Sec-WebSocket-Key: base64, with
 * padding, of exactly 16 bytes (section 4.1), else 0.
 */
int h2ws_h1_key_valid(const char *key, size_t len);

/*
 * Writes base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) and a
 * NUL to `out` (H2WS_ACCEPT_LEN + 1 bytes): the Sec-WebSocket-Accept for
 * `key` (section 4.2.2). Returns 0, H2WS_ERR_INVALID_ARGUMENT (key over 256
 * bytes) or H2WS_ERR_INTERNAL (OpenSSL failed).
 */
int h2ws_h1_accept(const char *key, size_t len, char out[H2WS_ACCEPT_LEN + 1]);

#endif

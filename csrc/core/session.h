/*
 * session.h - an HTTP/2 connection carrying WebSockets (RFC 8441) and plain
 * requests, on libnghttp2, sans-IO.
 *
 * Bytes in (h2ws_session_recv), events out (the h2ws_session_event_cb the
 * caller registers, called synchronously from inside h2ws_session_recv and
 * h2ws_session_send), bytes to send out (h2ws_session_send).
 *
 * Server role. The first SETTINGS carries MAX_CONCURRENT_STREAMS,
 * INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE and, when enabled,
 * ENABLE_CONNECT_PROTOCOL = 1. A request with :method CONNECT and
 * :protocol websocket (any case) that passes RFC 8441 / RFC 6455 checks is
 * announced as H2WS_SEV_WEBSOCKET; the caller accepts (200) or rejects it.
 * Bad extended CONNECTs are answered by the core itself (400, 501, 431).
 * Other requests are announced as H2WS_SEV_REQUEST and answered with
 * h2ws_session_respond / h2ws_session_send_body. A request over
 * MAX_CONCURRENT_STREAMS is refused with RST_STREAM(REFUSED_STREAM) and never
 * announced; the connection carries on (RFC 9113 section 5.1.2).
 *
 * Flow control: automatic WINDOW_UPDATE is off. The connection window is
 * returned as soon as DATA is parsed. For a WebSocket stream, each message
 * event carries a `credit` (the DATA bytes it took); the stream window for
 * it is returned when the caller says the application took the message
 * (h2ws_session_consume). Bytes of a message still being assembled and of
 * control frames are returned at once while the application has no message
 * waiting, and held while it has. Request bodies work the same way, one
 * credit per chunk.
 *
 * Output: each stream has a send queue feeding an nghttp2 data provider; a
 * queue above `write_high_water` makes the send calls return 1, and an
 * H2WS_SEV_RESUME_WRITING event follows when it drains below a quarter.
 */
#ifndef H2WS_SESSION_H
#define H2WS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "ws.h"

typedef struct h2ws_session h2ws_session;

typedef struct {
  int enable_connect_protocol;     /* advertise RFC 8441 (default 1) */
  uint32_t max_concurrent_streams; /* default 100 */
  uint32_t initial_window_size;    /* stream receive window, default 256 KiB */
  uint32_t connection_window_size; /* connection receive window, default 8 MiB */
  uint32_t max_header_list_size;   /* default 16 KiB */
  uint32_t max_frame_size;         /* largest DATA frame we accept, default 16384 */
  size_t write_high_water;         /* per-stream send queue, default 64 KiB */
  h2ws_ws_config ws;               /* per-WebSocket codec settings (role forced to server) */
} h2ws_session_config;

/* Fills `cfg` with the defaults above. */
void h2ws_session_config_init(h2ws_session_config *cfg);

typedef enum {
  H2WS_SEV_REQUEST = 1,        /* plain request head: headers, end_stream in `code` */
  H2WS_SEV_WEBSOCKET = 2,      /* extended CONNECT for a WebSocket: headers */
  H2WS_SEV_BODY = 3,           /* request body chunk: data, credit */
  H2WS_SEV_BODY_END = 4,       /* request body ended */
  H2WS_SEV_TEXT = 5,           /* WebSocket text message (UTF-8): data, credit; code = 1
                                  when data is a whole_mem allocation (h2ws_ws_event.whole) */
  H2WS_SEV_BINARY = 6,         /* WebSocket binary message: data, credit; code as TEXT */
  H2WS_SEV_PONG = 7,           /* WebSocket pong: data */
  H2WS_SEV_CLOSE = 8,          /* peer's close frame: code (1005 if none), data = reason */
  H2WS_SEV_WS_FAILED = 9,      /* peer broke RFC 6455: code we closed with, reason */
  H2WS_SEV_STREAM_END = 10,    /* stream closed: code = HTTP/2 error code (0 clean) */
  H2WS_SEV_RESUME_WRITING = 11,/* the stream's send queue drained */
  H2WS_SEV_GOAWAY = 12,        /* peer's GOAWAY: stream_id = last stream id, code */
  H2WS_SEV_PEER_ENDED = 13,    /* WebSocket stream ended by the peer without a close frame */
  H2WS_SEV_SETTINGS = 14,      /* peer's SETTINGS: code = ENABLE_CONNECT_PROTOCOL,
                                  credit = MAX_CONCURRENT_STREAMS */
  H2WS_SEV_RESPONSE = 15       /* client: response to our extended CONNECT: code = status,
                                  headers, credit = 1 if it opened the WebSocket (a 2xx
                                  without END_STREAM and with headers within limits) */
} h2ws_session_event_type;

typedef struct {
  int type;
  int32_t stream_id;
  uint32_t code;
  size_t credit;        /* TEXT/BINARY/BODY: pass to h2ws_session_consume when taken */
  const uint8_t *data;  /* borrowed for the callback; may be NULL when len is 0 */
  size_t len;
  const char *reason;   /* WS_FAILED: static text */
  /* REQUEST/WEBSOCKET: headers as packed records, read with h2ws_header_next */
  const uint8_t *headers;
  size_t headers_len;
  size_t nheaders;
} h2ws_session_event;

/* A header: name and value borrowed from where they were read. */
typedef struct {
  const uint8_t *name;
  size_t namelen;
  const uint8_t *value;
  size_t valuelen;
} h2ws_header;

/* Reads the header at *pos of a packed block and advances *pos.
 * Returns 1 if one was read, 0 at the end. */
int h2ws_header_next(const uint8_t *block, size_t len, size_t *pos, h2ws_header *out);

/* Called for each event. Return 0, or non-zero to fail the running call
 * with H2WS_ERR_CALLBACK (the session is then unusable). */
typedef int (*h2ws_session_event_cb)(const h2ws_session_event *ev, void *user_data);

/*
 * Creates a server session and queues its SETTINGS. `cfg` is copied (NULL:
 * defaults); `mem` (NULL: default) is borrowed for the session's life and
 * also serves libnghttp2. Returns 0 and *out, or H2WS_ERR_NOMEM /
 * H2WS_ERR_INTERNAL / H2WS_ERR_INVALID_ARGUMENT.
 */
int h2ws_session_server_new(h2ws_session **out, const h2ws_session_config *cfg,
                            const h2ws_mem *mem, h2ws_session_event_cb cb, void *user_data);

/*
 * Creates a client session and queues its SETTINGS (ENABLE_PUSH 0, windows,
 * header list size; never ENABLE_CONNECT_PROTOCOL). Same arguments and
 * errors as h2ws_session_server_new. Open WebSockets with
 * h2ws_session_ws_connect once H2WS_SEV_SETTINGS reported the peer's
 * ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 section 3); frames are masked
 * with fresh keys from OpenSSL's CSPRNG.
 */
int h2ws_session_client_new(h2ws_session **out, const h2ws_session_config *cfg,
                            const h2ws_mem *mem, h2ws_session_event_cb cb, void *user_data);

/*
 * Client: sends an extended CONNECT with `hdrs` (borrowed; the caller gives
 * every field, pseudo-headers first: :method CONNECT, :protocol websocket,
 * :scheme, :path, :authority, sec-websocket-version 13...). Sets *sid_out.
 * H2WS_SEV_RESPONSE follows. Returns 0, H2WS_ERR_INVALID_STATE (not a
 * client, no new streams allowed: GOAWAY or closing), H2WS_ERR_NOMEM.
 */
int h2ws_session_ws_connect(h2ws_session *s, const h2ws_header *hdrs, size_t n, int32_t *sid_out);

/* Frees the session and every stream it holds. NULL is allowed. */
void h2ws_session_del(h2ws_session *s);

/*
 * Feeds bytes read from the peer (borrowed for the call); events are
 * delivered through the callback. Returns 0, or a negative error when the
 * connection must end: H2WS_ERR_PROTOCOL (a GOAWAY is queued: send what
 * h2ws_session_send gives, then close), H2WS_ERR_CALLBACK, H2WS_ERR_NOMEM.
 * *detail (if not NULL) receives a static description.
 */
int h2ws_session_recv(h2ws_session *s, const uint8_t *data, size_t len, const char **detail);

/* Appends everything ready to be written to `out`. Returns 0 or a negative
 * fatal error (as for recv). */
int h2ws_session_send(h2ws_session *s, h2ws_buf *out);

/* What h2ws_session_send_refs calls to take one more hold on a payload it
 * records by reference: `ctx` as given to h2ws_session_ws_send_ref. */
typedef void (*h2ws_session_retain_cb)(void *ctx);

/* A piece of output left in place: data[0..len) goes at offset `at` of the
 * output buffer's pending bytes (h2ws_buf_begin; before the byte that is
 * there). ctx: as given to
 * h2ws_session_ws_send_ref, held once more for this record. */
typedef struct {
  size_t at;
  const uint8_t *data;
  size_t len;
  void *ctx;
} h2ws_session_ref;

/* Smallest piece of a by-reference payload h2ws_session_send_refs records
 * instead of copying. */
#define H2WS_SESSION_REF_MIN (4 * 1024)

/*
 * h2ws_session_send for scatter writes: the DATA payload of messages queued
 * by reference (h2ws_session_ws_send_ref) is not copied into `out` (pieces
 * of at least H2WS_SESSION_REF_MIN bytes): an h2ws_session_ref is appended
 * to `refs` (an h2ws_buf used as an array of them, in output order) for
 * each piece, and retain(ctx) is called once for it. The bytes to write are
 * then out's, with each record's piece inserted at its offset. Whatever it
 * returns, the caller owns one hold per record appended and gives each back
 * with the release function it passed to h2ws_session_ws_send_ref, once it
 * no longer needs the piece. Returns as h2ws_session_send.
 */
int h2ws_session_send_refs(h2ws_session *s, h2ws_buf *out, h2ws_buf *refs,
                           h2ws_session_retain_cb retain);

/* Output smaller than this is not worth sizing (h2ws_session_output_bound). */
#define H2WS_SESSION_LARGE_OUTPUT (64 * 1024)

/* The payload bytes the next h2ws_session_send may emit in DATA frames: what
 * the streams have queued, within their send windows and the connection's.
 * Frame headers and other frames come on top. For sizing `out` beforehand.
 * It looks at the streams (one pass) only after a send call left at least
 * H2WS_SESSION_LARGE_OUTPUT bytes queued on a stream, and returns 0 without
 * looking otherwise, until a pass finds less than that queued in all. */
size_t h2ws_session_output_bound(h2ws_session *s);

/* The same bound for h2ws_session_send_refs: payload queued by reference is
 * counted only for what may be copied (pieces under H2WS_SESSION_REF_MIN). */
size_t h2ws_session_output_bound_refs(h2ws_session *s);

/* 1 while the connection has anything left to do; 0 when it can be closed
 * (both sides sent GOAWAY and no stream is open, or a fatal error). */
int h2ws_session_want_io(h2ws_session *s);

/*
 * Accepts a WebSocket request announced by H2WS_SEV_WEBSOCKET: :status 200
 * plus `hdrs` (e.g. sec-websocket-protocol; connection-specific headers and
 * content-length are dropped). Returns 0, H2WS_ERR_INVALID_STATE (not a
 * pending WebSocket request), H2WS_ERR_NOMEM.
 */
int h2ws_session_ws_accept(h2ws_session *s, int32_t stream_id, const h2ws_header *hdrs, size_t n);

/*
 * Answers a request (or rejects a pending WebSocket request) with `status`
 * and `hdrs`. With end_stream the response has no body; otherwise send the
 * body with h2ws_session_send_body. Connection-specific headers are dropped.
 */
int h2ws_session_respond(h2ws_session *s, int32_t stream_id, unsigned status,
                         const h2ws_header *hdrs, size_t n, int end_stream);

/* Queues response body bytes (borrowed; copied); `end` ends the stream
 * after them. Returns 0, 1 (queue over the high-water mark: wait for
 * H2WS_SEV_RESUME_WRITING), or a negative error. */
int h2ws_session_send_body(h2ws_session *s, int32_t stream_id, const uint8_t *data, size_t len,
                           int end);

/* Queues one WebSocket frame (opcode TEXT/BINARY/CONT/PING/PONG; see
 * h2ws_ws_send_frame). Returns 0, 1 (over high water) or a negative error
 * (H2WS_ERR_INVALID_STATE if the stream is not an open WebSocket or our
 * close frame was sent). */
int h2ws_session_ws_send(h2ws_session *s, int32_t stream_id, unsigned opcode,
                         const uint8_t *data, size_t len, int fin);

/* What h2ws_session_ws_send_ref calls when it no longer needs a payload. */
typedef void (*h2ws_session_release_cb)(void *ctx);

/*
 * Queues one binary message (a single frame) like h2ws_session_ws_send,
 * without copying its payload in the server role: data[0..len) must stay
 * valid and unchanged until release(ctx) is called. release is called
 * exactly once when this returns 0 or 1 (by then if the payload was copied:
 * in the client role, where payloads are masked, or when another payload is
 * held by reference on the stream; else once the payload went out, or when
 * something queued after it copies what is left, the stream ends or the
 * session is deleted), never when it returns a negative error (the caller
 * keeps the payload). Returns as h2ws_session_ws_send.
 */
int h2ws_session_ws_send_ref(h2ws_session *s, int32_t sid, const uint8_t *data, size_t len,
                             h2ws_session_release_cb release, void *ctx);

/* Queues our close frame (code 0: empty payload). A server sends END_STREAM
 * once the peer's close frame has arrived (at once if it already has); a
 * client sends it with its close frame. */
int h2ws_session_ws_close(h2ws_session *s, int32_t stream_id, unsigned code,
                          const uint8_t *reason, size_t len);

/* Resets a stream with an HTTP/2 error code (e.g. 8, CANCEL). */
int h2ws_session_reset(h2ws_session *s, int32_t stream_id, uint32_t error_code);

/* Returns `credit` bytes of a stream's receive window (the application
 * took a message or body chunk carrying that credit). */
int h2ws_session_consume(h2ws_session *s, int32_t stream_id, size_t credit);

/* Graceful shutdown, step 1: GOAWAY with the maximum last-stream-id; new
 * WebSocket requests are refused (REFUSED_STREAM) from now on. */
int h2ws_session_shutdown_notice(h2ws_session *s);

/* Final GOAWAY with the last stream id processed and `error_code`. */
int h2ws_session_goaway(h2ws_session *s, uint32_t error_code);

/* Number of streams open (in the HTTP/2 sense) on the session. */
size_t h2ws_session_open_streams(h2ws_session *s);

/* Bytes queued for a stream and not yet handed to nghttp2; 0 if unknown. */
size_t h2ws_session_stream_buffered(h2ws_session *s, int32_t stream_id);

#endif

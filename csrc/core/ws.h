/*
 * ws.h - one WebSocket endpoint's RFC 6455 state machine: an incremental
 * parser that assembles messages, and a serializer for what it sends.
 *
 * It knows nothing of the transport: the same object runs on an HTTP/1.1
 * connection after the Upgrade or on one HTTP/2 stream (RFC 8441).
 *
 * Receiving: feed bytes with h2ws_ws_recv(); it returns after each event.
 * Input may be split at any byte. A violation yields one H2WS_WS_EV_ERROR
 * carrying the close code to send (1002, 1007 or 1009) and the parser stops
 * (later input is consumed and ignored). After the peer's close frame the
 * parser stops too.
 *
 * Sending: h2ws_ws_send_frame() and h2ws_ws_send_close() append complete
 * frames to a caller's h2ws_buf; in the client role every frame is masked
 * with a fresh key from the h2ws_rng.
 */
#ifndef H2WS_WS_H
#define H2WS_WS_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mem.h"
#include "rng.h"

#define H2WS_WS_DEFAULT_MAX_MESSAGE (1u << 20)

typedef struct {
  int client;                /* 0: server role (peer frames must be masked); 1: client */
  uint64_t max_message_size; /* bytes; 0 means no limit. Default 1 MiB. */
  uint64_t max_frame_size;   /* bytes; 0 means only max_message_size applies. */
  unsigned rsv_allowed;      /* H2WS_RSV* bits an extension claims; default 0 */
  /* NULL (default): every message buffer comes from the ws's `mem`. Else
   * (borrowed for the ws's life): the allocator of the buffer of a message
   * that arrives whole in one frame of at least H2WS_WS_WHOLE_MIN bytes
   * under a message limit. That buffer is allocated once at the frame's
   * exact length, the payload is unmasked straight into it, and the event
   * says so (h2ws_ws_event.whole): a binding can then keep the allocation
   * as the message (taking its own reference before the ws frees it). */
  const h2ws_mem *whole_mem;
} h2ws_ws_config;

/* Smallest single-frame message given a buffer of its own (whole_mem). */
#define H2WS_WS_WHOLE_MIN (64 * 1024)

/* Fills `cfg` with the defaults (server role, 1 MiB messages). */
void h2ws_ws_config_init(h2ws_ws_config *cfg);

typedef enum {
  H2WS_WS_EV_NONE = 0,
  H2WS_WS_EV_TEXT = 1,   /* a complete text message, valid UTF-8 */
  H2WS_WS_EV_BINARY = 2, /* a complete binary message */
  H2WS_WS_EV_PING = 3,   /* payload: application data to echo in a pong */
  H2WS_WS_EV_PONG = 4,
  H2WS_WS_EV_CLOSE = 5,  /* peer's close frame: close_code (1005 if none), payload: reason */
  H2WS_WS_EV_ERROR = 6   /* violation: close_code to send, reason: static text */
} h2ws_ws_event_type;

typedef struct {
  int type;            /* h2ws_ws_event_type */
  unsigned close_code; /* CLOSE and ERROR */
  unsigned rsv;        /* RSV bits of the message's first frame (data messages) */
  const uint8_t *data; /* payload, borrowed until the next call on the ws; may be NULL if len is 0 */
  size_t len;
  const char *reason;  /* ERROR only: static, NUL-terminated */
  int whole;           /* TEXT/BINARY: data is the start of a whole_mem allocation of
                          exactly len bytes (see h2ws_ws_config.whole_mem) */
} h2ws_ws_event;

enum { H2WS_WS_ST_HEADER, H2WS_WS_ST_PAYLOAD, H2WS_WS_ST_CLOSED, H2WS_WS_ST_FAILED };

/* Caller-owned (embed it where it lives); fields are private to ws.c. */
typedef struct {
  h2ws_ws_config cfg;
  h2ws_rng *rng; /* borrowed; needed in the client role only */
  /* receiving */
  uint8_t state;
  uint8_t hdr_len;   /* header bytes stashed in hdr while split */
  uint8_t msg_opcode; /* TEXT or BINARY while a message is being assembled, else 0 */
  uint8_t msg_rsv;
  uint8_t delivered; /* msg holds a delivered message: reset on next call */
  uint8_t ctl_len;
  uint8_t hdr[H2WS_FRAME_HEADER_MAX];
  /* H2WS_CONTROL_MAX bytes from `mem`, allocated when a control frame's
   * payload arrives and freed by h2ws_ws_event_done once its event is
   * handled: an idle ws holds none. */
  uint8_t *ctl;
  h2ws_frame_header cur;
  uint64_t remaining; /* payload bytes still to come in the current frame */
  uint32_t utf8;      /* validator state of the text message */
  h2ws_buf msg;         /* its mem is cfg.whole_mem while it holds such a message */
  const h2ws_mem *mem;  /* the ws's allocator */
  /* sending */
  uint8_t send_opcode; /* TEXT/BINARY while we send a fragmented message */
  uint32_t send_utf8;  /* validator state of the text message we send */
  uint8_t close_sent;
  uint8_t close_received;
} h2ws_ws;

/* Initialises `ws` with a copy of `cfg` (NULL: defaults). `mem` (may be NULL)
 * and `rng` (may be NULL in the server role) are borrowed for ws's life. */
void h2ws_ws_init(h2ws_ws *ws, const h2ws_ws_config *cfg, const h2ws_mem *mem, h2ws_rng *rng);

/* Frees what ws holds; ws may then be initialised again. */
void h2ws_ws_free(h2ws_ws *ws);

/*
 * Parses data[0..len) (borrowed for the call) until the end of the input or
 * the end of the next event, whichever comes first. Sets *consumed to the
 * bytes used and fills *ev (type H2WS_WS_EV_NONE when no event is ready).
 * Call again with the rest of the input after each event.
 * Returns 0, or H2WS_ERR_NOMEM (the ws is then unusable: fail the stream
 * with close code 1011).
 */
int h2ws_ws_recv(h2ws_ws *ws, const uint8_t *data, size_t len, size_t *consumed,
                 h2ws_ws_event *ev);

/* Releases the payload of the last event early (it is released at the next
 * h2ws_ws_recv anyway): lets an idle endpoint hold no buffer. */
void h2ws_ws_event_done(h2ws_ws *ws);

/*
 * Writes the header of a frame to `hdr` (H2WS_FRAME_HEADER_MAX bytes) and
 * updates the sending state, for callers that place the payload themselves.
 * In the client role a fresh key is written to `key` and must be applied to
 * the payload (h2ws_mask_copy, phase 0); in the server role `key` is unused.
 * Rules: control opcodes need fin and len <= 125; data frames continue a
 * fragmented message with H2WS_OP_CONT and start one with TEXT/BINARY;
 * CLOSE goes through h2ws_ws_send_close; rsv must be within rsv_allowed;
 * nothing may follow our close frame.
 * Returns the header size (> 0), H2WS_ERR_INVALID_ARGUMENT,
 * H2WS_ERR_INVALID_STATE or H2WS_ERR_INTERNAL (CSPRNG failure).
 */
int h2ws_ws_frame_begin(h2ws_ws *ws, uint8_t *hdr, uint8_t key[4], unsigned opcode,
                        uint64_t len, int fin, unsigned rsv);

/* Appends one complete frame (header, then payload data[0..len), borrowed)
 * to `out`. Same rules and errors as h2ws_ws_frame_begin, plus
 * H2WS_ERR_INVALID_ARGUMENT when a text message would not be valid UTF-8
 * (section 5.6; checked across fragments) and H2WS_ERR_NOMEM (nothing
 * appended, state unchanged). Returns 0 on success. */
int h2ws_ws_send_frame(h2ws_ws *ws, h2ws_buf *out, unsigned opcode, const uint8_t *data,
                       size_t len, int fin, unsigned rsv);

/*
 * Appends our close frame to `out`. code 0 sends an empty close payload
 * (then reason must be empty); otherwise code must be valid on the wire
 * (h2ws_close_code_is_valid) and reason (borrowed) valid UTF-8 of at most
 * 123 bytes. Returns 0, H2WS_ERR_INVALID_ARGUMENT, H2WS_ERR_INVALID_STATE
 * (already sent), H2WS_ERR_NOMEM or H2WS_ERR_INTERNAL.
 */
int h2ws_ws_send_close(h2ws_ws *ws, h2ws_buf *out, unsigned code, const uint8_t *reason,
                       size_t len);

#endif

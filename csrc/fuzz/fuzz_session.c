/*
 * fuzz_session.c - libFuzzer harness over the HTTP/2 session glue
 * (csrc/core/session.c) in the server role.
 *
 * The input follows the client connection preface and is fed in pieces
 * whose sizes come from its first byte; the event callback plays a busy
 * application: it accepts WebSocket requests (or refuses every third),
 * echoes messages (binary ones every other time by reference, drained
 * with h2ws_session_send_refs when the first byte says so), returns
 * credit, answers plain requests with a body, closes and resets streams
 * now and then. Output is drained after every
 * piece. ASan/UBSan catch memory errors, LSan anything not freed by
 * h2ws_session_del.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mem.h"
#include "session.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

typedef struct {
  h2ws_session *s;
  unsigned n;
} app;

/* A payload sent by reference (h2ws_session_ws_send_ref), counted. */
typedef struct {
  unsigned refs;
  size_t len;
  uint8_t data[];
} shared;

static void shared_release(void *ctx) {
  shared *p = ctx;
  if (--p->refs == 0)
    free(p);
}

static void shared_retain(void *ctx) { ((shared *)ctx)->refs++; }

/* Echoes a binary message by reference. */
static void send_by_ref(app *a, int32_t sid, const uint8_t *data, size_t len) {
  shared *p = malloc(sizeof *p + len + 1);
  if (!p)
    return;
  p->refs = 1;
  p->len = len;
  if (len)
    memcpy(p->data, data, len);
  if (h2ws_session_ws_send_ref(a->s, sid, p->data, len, shared_release, p) < 0)
    free(p); /* not taken */
}

/* Drains output like h2ws_session_send, alternating with the scatter
 * variant, whose records are read (ASan sees a freed payload) and given
 * back. */
static int drain(app *a, h2ws_buf *out, h2ws_buf *refs, int scatter) {
  if (!scatter)
    return h2ws_session_send(a->s, out);
  int rv = h2ws_session_send_refs(a->s, out, refs, shared_retain);
  size_t n = refs->len / sizeof(h2ws_session_ref);
  for (size_t i = 0; i < n; i++) {
    h2ws_session_ref r;
    memcpy(&r, refs->data + i * sizeof r, sizeof r);
    shared *p = r.ctx;
    if (r.at > h2ws_buf_pending(out) || r.data < p->data || r.data + r.len > p->data + p->len)
      abort();
    volatile uint8_t sum = 0;
    for (size_t j = 0; j < r.len; j++)
      sum ^= r.data[j];
    (void)sum;
    shared_release(p);
  }
  h2ws_buf_reset(refs, 0);
  return rv;
}

static int on_event(const h2ws_session_event *ev, void *ud) {
  app *a = ud;
  a->n++;
  static const h2ws_header proto = {(const uint8_t *)"sec-websocket-protocol", 22,
                                    (const uint8_t *)"chat", 4};
  switch (ev->type) {
  case H2WS_SEV_WEBSOCKET: {
    size_t pos = 0, count = 0;
    h2ws_header h;
    while (h2ws_header_next(ev->headers, ev->headers_len, &pos, &h))
      count++;
    if (count != ev->nheaders)
      abort();
    if (a->n % 3 == 0)
      h2ws_session_respond(a->s, ev->stream_id, 403, NULL, 0, 1);
    else
      h2ws_session_ws_accept(a->s, ev->stream_id, &proto, 1);
    break;
  }
  case H2WS_SEV_REQUEST:
    h2ws_session_respond(a->s, ev->stream_id, 200, NULL, 0, 0);
    h2ws_session_send_body(a->s, ev->stream_id, (const uint8_t *)"hello", 5, ev->code != 0);
    break;
  case H2WS_SEV_BODY:
    h2ws_session_consume(a->s, ev->stream_id, ev->credit);
    if (a->n % 5 == 0)
      h2ws_session_send_body(a->s, ev->stream_id, (const uint8_t *)"", 0, 1);
    break;
  case H2WS_SEV_TEXT:
  case H2WS_SEV_BINARY:
    if (ev->type == H2WS_SEV_BINARY && a->n % 2)
      send_by_ref(a, ev->stream_id, ev->data, ev->len);
    else
      h2ws_session_ws_send(a->s, ev->stream_id,
                           ev->type == H2WS_SEV_TEXT ? 1 : 2, ev->data, ev->len, 1);
    h2ws_session_consume(a->s, ev->stream_id, ev->credit);
    if (a->n % 7 == 0)
      h2ws_session_ws_close(a->s, ev->stream_id, 1000, (const uint8_t *)"bye", 3);
    if (a->n % 11 == 0)
      h2ws_session_reset(a->s, ev->stream_id, 8);
    break;
  case H2WS_SEV_PONG:
  case H2WS_SEV_CLOSE:
  case H2WS_SEV_WS_FAILED:
  case H2WS_SEV_STREAM_END:
  case H2WS_SEV_RESUME_WRITING:
  case H2WS_SEV_GOAWAY:
  case H2WS_SEV_PEER_ENDED:
  case H2WS_SEV_BODY_END:
  case H2WS_SEV_SETTINGS: /* reported in both roles; a server has nothing to do */
    break;
  default: /* H2WS_SEV_RESPONSE is for the client role only */
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  app a = {NULL, 0};
  h2ws_session_config cfg;
  h2ws_session_config_init(&cfg);
  cfg.max_concurrent_streams = 8;
  cfg.initial_window_size = 65535;
  cfg.ws.max_message_size = 3 * H2WS_SESSION_REF_MIN; /* pieces sent by reference */
  cfg.write_high_water = 1024;
  if (h2ws_session_server_new(&a.s, &cfg, NULL, on_event, &a))
    return 0;
  h2ws_buf out, refs;
  h2ws_buf_init(&out, NULL);
  h2ws_buf_init(&refs, NULL);
  size_t step = (size_t)(data[0] % 64) + 1;
  int scatter = (data[0] & 0x40) != 0;
  int rv = h2ws_session_recv(a.s, (const uint8_t *)PREFACE, sizeof PREFACE - 1, NULL);
  for (size_t pos = 1; rv == 0 && pos < size; pos += step) {
    size_t n = size - pos < step ? size - pos : step;
    rv = h2ws_session_recv(a.s, data + pos, n, NULL);
    if (drain(&a, &out, &refs, scatter) < 0)
      break;
    h2ws_buf_reset(&out, 1 << 16);
  }
  if (rv == 0 && (data[0] & 0x80)) {
    h2ws_session_shutdown_notice(a.s);
    h2ws_session_goaway(a.s, 0);
  }
  drain(&a, &out, &refs, scatter);
  h2ws_buf_free(&out);
  h2ws_buf_free(&refs);
  h2ws_session_del(a.s);
  return 0;
}

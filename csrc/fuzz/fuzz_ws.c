/*
 * fuzz_ws.c - libFuzzer harness over the RFC 6455 codec (csrc/core/ws.c).
 *
 * Input layout: byte 0 picks the role and limits, byte 1 the split step;
 * the rest is fed to a parser twice, whole and in pieces. Both runs must
 * produce the same events (the parser accepts input split at any byte),
 * every TEXT event must be valid UTF-8, and every message must respect
 * the configured limit. Then each message is re-serialized with the
 * opposite role (in fragments within the frame limit) and parsed back,
 * which must round-trip. LSan (on by default
 * with -fsanitize=fuzzer,address) reports anything not freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mem.h"
#include "rng.h"
#include "utf8.h"
#include "ws.h"

#define MAX_EVENTS 512

typedef struct {
  int type;
  unsigned code;
  size_t len;
  uint64_t hash;
} rec;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static size_t run(const h2ws_ws_config *cfg, const uint8_t *data, size_t len, size_t step,
                  rec *out, h2ws_buf *reencoded) {
  h2ws_ws ws, peer;
  h2ws_rng rng;
  h2ws_rng_init(&rng);
  h2ws_ws_init(&ws, cfg, NULL, &rng);
  h2ws_ws_config pcfg = *cfg;
  pcfg.client = !cfg->client;
  h2ws_ws_init(&peer, &pcfg, NULL, &rng);
  size_t n = 0, pos = 0;
  while (pos < len && n < MAX_EVENTS) {
    size_t chunk = step ? (len - pos < step ? len - pos : step) : len - pos;
    size_t off = 0;
    while (off < chunk || chunk == 0) {
      h2ws_ws_event ev;
      size_t used;
      if (h2ws_ws_recv(&ws, data + pos + off, chunk - off, &used, &ev) < 0)
        abort(); /* the default allocator does not fail here */
      off += used;
      if (ev.type == H2WS_WS_EV_NONE)
        break;
      if (n == MAX_EVENTS)
        break;
      if (ev.type == H2WS_WS_EV_TEXT && !h2ws_utf8_valid(ev.data, ev.len))
        abort();
      if ((ev.type == H2WS_WS_EV_TEXT || ev.type == H2WS_WS_EV_BINARY) &&
          cfg->max_message_size && ev.len > cfg->max_message_size)
        abort();
      out[n].type = ev.type;
      out[n].code = ev.close_code;
      out[n].len = ev.len;
      out[n].hash = ev.len ? fnv(ev.data, ev.len) : 0;
      n++;
      if (reencoded && (ev.type == H2WS_WS_EV_TEXT || ev.type == H2WS_WS_EV_BINARY)) {
        /* Framed within the parser's frame limit, as a conforming peer would. */
        unsigned op = ev.type == H2WS_WS_EV_TEXT ? H2WS_OP_TEXT : H2WS_OP_BINARY;
        size_t piece = cfg->max_frame_size ? (size_t)cfg->max_frame_size : ev.len;
        size_t at = 0;
        do {
          size_t n_ = ev.len - at < piece ? ev.len - at : piece;
          int fin = at + n_ == ev.len;
          if (h2ws_ws_send_frame(&peer, reencoded, at ? H2WS_OP_CONT : op, n_ ? ev.data + at : ev.data, n_, fin,
                                 0) < 0)
            abort();
          at += n_;
        } while (at < ev.len);
      }
      if (ev.type == H2WS_WS_EV_ERROR || ev.type == H2WS_WS_EV_CLOSE) {
        off = chunk;
        pos = len;
        break;
      }
    }
    pos += chunk;
    if (chunk == 0)
      break;
  }
  h2ws_ws_free(&ws);
  h2ws_ws_free(&peer);
  h2ws_rng_free(&rng);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  static rec a[MAX_EVENTS], b[MAX_EVENTS], c[MAX_EVENTS];
  h2ws_ws_config cfg;
  h2ws_ws_config_init(&cfg);
  cfg.client = data[0] & 1;
  cfg.max_message_size = (data[0] & 2) ? 300 : 1u << 16;
  cfg.max_frame_size = (data[0] & 4) ? 100 : 0;
  cfg.rsv_allowed = (data[0] & 8) ? H2WS_RSV1 : 0;
  size_t step = (size_t)data[1] % 17 + 1;
  const uint8_t *in = data + 2;
  size_t len = size - 2;

  h2ws_buf re;
  h2ws_buf_init(&re, NULL);
  size_t na = run(&cfg, in, len, 0, a, &re);
  size_t nb = run(&cfg, in, len, step, b, NULL);
  if (na != nb)
    abort();
  for (size_t i = 0; i < na; i++)
    if (a[i].type != b[i].type || a[i].code != b[i].code || a[i].len != b[i].len ||
        a[i].hash != b[i].hash)
      abort();

  /* Round trip: the messages, framed by the opposite role, parse back. */
  size_t nmsg = 0;
  for (size_t i = 0; i < na; i++)
    if (a[i].type == H2WS_WS_EV_TEXT || a[i].type == H2WS_WS_EV_BINARY)
      a[nmsg++] = a[i];
  size_t nc = run(&cfg, re.data, re.len, step, c, NULL);
  if (nc != nmsg)
    abort();
  for (size_t i = 0; i < nc; i++)
    if (c[i].type != a[i].type || c[i].len != a[i].len || c[i].hash != a[i].hash)
      abort();
  h2ws_buf_free(&re);
  return 0;
}

#include "ws.h"

#include <string.h>

#include "error.h"
#include "mask.h"
#include "utf8.h"

/* A delivered message's buffer is kept for the next one up to this size. */
#define KEEP_BUFFER 1024

void h2ws_ws_config_init(h2ws_ws_config *cfg) {
  cfg->client = 0;
  cfg->max_message_size = H2WS_WS_DEFAULT_MAX_MESSAGE;
  cfg->max_frame_size = 0;
  cfg->rsv_allowed = 0;
  cfg->whole_mem = NULL;
}

void h2ws_ws_init(h2ws_ws *ws, const h2ws_ws_config *cfg, const h2ws_mem *mem, h2ws_rng *rng) {
  memset(ws, 0, sizeof *ws);
  if (cfg)
    ws->cfg = *cfg;
  else
    h2ws_ws_config_init(&ws->cfg);
  ws->rng = rng;
  ws->mem = mem;
  ws->state = H2WS_WS_ST_HEADER;
  h2ws_buf_init(&ws->msg, mem);
}

/* Frees the message buffer; the next one comes from the ws's allocator. */
static void free_msg(h2ws_ws *ws) {
  h2ws_buf_free(&ws->msg);
  ws->msg.mem = ws->mem;
}

/* Frees the control-frame payload buffer. */
static void free_ctl(h2ws_ws *ws) {
  h2ws_mem_free(ws->mem, ws->ctl);
  ws->ctl = NULL;
}

void h2ws_ws_free(h2ws_ws *ws) {
  free_msg(ws);
  free_ctl(ws);
}

void h2ws_ws_event_done(h2ws_ws *ws) {
  /* Kept while a control frame's payload is still arriving. */
  if (ws->ctl && !(ws->state == H2WS_WS_ST_PAYLOAD && h2ws_opcode_is_control(ws->cur.opcode)))
    free_ctl(ws);
  if (ws->delivered) {
    if (ws->msg.mem != ws->mem)
      free_msg(ws); /* a whole_mem buffer: one message each */
    else
      h2ws_buf_reset(&ws->msg, KEEP_BUFFER);
    ws->delivered = 0;
  }
}

static void fail(h2ws_ws *ws, h2ws_ws_event *ev, unsigned code, const char *reason) {
  ws->state = H2WS_WS_ST_FAILED;
  free_msg(ws);
  ev->type = H2WS_WS_EV_ERROR;
  ev->close_code = code;
  ev->reason = reason;
  ev->data = NULL;
  ev->len = 0;
}

/* Checks what the first two header bytes decide (RFC 6455 section 5.2,
 * 5.1, 5.4, 5.5), so a bad frame fails before its length or key arrive.
 * Returns 0 if acceptable, else fills *ev with the error. */
static int check_start(h2ws_ws *ws, uint8_t b0, uint8_t b1, h2ws_ws_event *ev) {
  unsigned opcode = b0 & 0x0F, rsv = b0 & 0x70, fin = b0 & H2WS_FIN;
  unsigned len7 = b1 & 0x7F, masked = b1 & 0x80;
  if (rsv & ~ws->cfg.rsv_allowed) {
    fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension");
    return -1;
  }
  if (!h2ws_opcode_is_known(opcode)) {
    fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
    return -1;
  }
  if (h2ws_opcode_is_control(opcode)) {
    if (!fin) {
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
      return -1;
    }
    if (len7 > H2WS_CONTROL_MAX) {
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes");
      return -1;
    }
    if (rsv) {
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "reserved bits set on a control frame");
      return -1;
    }
  } else if (opcode == H2WS_OP_CONT) {
    if (!ws->msg_opcode) {
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
      return -1;
    }
    if (rsv) { /* extensions mark only a message's first frame */
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "reserved bits set on a continuation frame");
      return -1;
    }
  } else if (ws->msg_opcode) {
    fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "new message before the previous one ended");
    return -1;
  }
  if (ws->cfg.client && masked) {
    fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "masked frame from a server");
    return -1;
  }
  if (!ws->cfg.client && !masked) {
    fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "unmasked frame from a client");
    return -1;
  }
  return 0;
}

/* Checks the complete header's length against the limits. */
static int check_length(h2ws_ws *ws, h2ws_ws_event *ev) {
  uint64_t len = ws->cur.length;
  if (h2ws_opcode_is_control(ws->cur.opcode))
    return 0;
  if (ws->cfg.max_frame_size && len > ws->cfg.max_frame_size) {
    fail(ws, ev, H2WS_CLOSE_MESSAGE_TOO_BIG, "frame too big");
    return -1;
  }
  if (ws->cfg.max_message_size &&
      len > ws->cfg.max_message_size - (ws->msg_opcode ? ws->msg.len : 0)) {
    fail(ws, ev, H2WS_CLOSE_MESSAGE_TOO_BIG, "message too big");
    return -1;
  }
  return 0;
}

/* Reserves room for n more message bytes; grows by doubling, capped at
 * the message limit so the buffer never exceeds it. */
static uint8_t *reserve_msg(h2ws_ws *ws, size_t n) {
  h2ws_buf *b = &ws->msg;
  if (b->cap - b->len >= n)
    return b->data + b->len;
  size_t need = b->len + n;
  size_t cap = b->cap ? b->cap * 2 : 256;
  if (cap < need)
    cap = need;
  if (ws->cfg.max_message_size && cap > ws->cfg.max_message_size && need <= ws->cfg.max_message_size)
    cap = (size_t)ws->cfg.max_message_size;
  uint8_t *p = h2ws_mem_realloc(b->mem, b->data, cap);
  if (!p)
    return NULL;
  b->data = p;
  b->cap = cap;
  return p + b->len;
}

/* Starts the frame whose header is in ws->cur. */
static void begin_frame(h2ws_ws *ws) {
  ws->remaining = ws->cur.length;
  ws->state = H2WS_WS_ST_PAYLOAD;
  if (h2ws_opcode_is_control(ws->cur.opcode)) {
    ws->ctl_len = 0;
  } else if (ws->cur.opcode != H2WS_OP_CONT) {
    ws->msg_opcode = ws->cur.opcode;
    ws->msg_rsv = ws->cur.rsv;
    ws->utf8 = H2WS_UTF8_ACCEPT;
  }
}

/* A message that arrives whole in one large frame, under a message limit
 * (check_length has bounded the frame by it, so an announced length never
 * reserves more than a message may hold anyway), gets a buffer of its exact
 * length, from whole_mem if set: its payload is unmasked in place, where
 * growing by doubling would copy it again, and a binding can keep that
 * buffer as the message. A failed allocation is not an error here:
 * take_payload grows the ordinary buffer as it goes. */
static void presize_msg(h2ws_ws *ws) {
  const h2ws_frame_header *h = &ws->cur;
  if (h2ws_opcode_is_control(h->opcode) || h->opcode == H2WS_OP_CONT || !h->fin ||
      h->length < H2WS_WS_WHOLE_MIN || !ws->cfg.max_message_size || h->length > SIZE_MAX / 2)
    return;
  const h2ws_mem *mem = ws->cfg.whole_mem ? ws->cfg.whole_mem : ws->mem;
  uint8_t *p = h2ws_mem_malloc(mem, (size_t)h->length);
  if (!p)
    return;
  free_msg(ws); /* empty here: at most a small buffer kept from before */
  ws->msg.data = p;
  ws->msg.cap = (size_t)h->length;
  ws->msg.mem = mem;
}

/* The current frame's payload is complete: produce its event, if any. */
static void end_frame(h2ws_ws *ws, h2ws_ws_event *ev) {
  ws->state = H2WS_WS_ST_HEADER;
  unsigned op = ws->cur.opcode;
  if (op == H2WS_OP_PING || op == H2WS_OP_PONG) {
    ev->type = op == H2WS_OP_PING ? H2WS_WS_EV_PING : H2WS_WS_EV_PONG;
    ev->data = ws->ctl;
    ev->len = ws->ctl_len;
    return;
  }
  if (op == H2WS_OP_CLOSE) {
    /* RFC 6455 section 5.5.1 and 7.4 */
    unsigned code = H2WS_CLOSE_NO_STATUS;
    if (ws->ctl_len == 1) {
      fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "close frame payload of 1 byte");
      return;
    }
    if (ws->ctl_len >= 2) {
      code = ((unsigned)ws->ctl[0] << 8) | ws->ctl[1];
      if (!h2ws_close_code_is_valid(code)) {
        fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
        return;
      }
      if (!h2ws_utf8_valid(ws->ctl + 2, ws->ctl_len - 2u)) {
        fail(ws, ev, H2WS_CLOSE_INVALID_PAYLOAD, "close reason is not valid UTF-8");
        return;
      }
    }
    ws->state = H2WS_WS_ST_CLOSED;
    ws->close_received = 1;
    free_msg(ws);
    ev->type = H2WS_WS_EV_CLOSE;
    ev->close_code = code;
    ev->data = ws->ctl_len >= 2 ? ws->ctl + 2 : NULL;
    ev->len = ws->ctl_len >= 2 ? ws->ctl_len - 2u : 0;
    return;
  }
  if (!ws->cur.fin)
    return;
  if (ws->msg_opcode == H2WS_OP_TEXT && ws->utf8 != H2WS_UTF8_ACCEPT) {
    fail(ws, ev, H2WS_CLOSE_INVALID_PAYLOAD, "text message is not valid UTF-8");
    return;
  }
  ev->type = ws->msg_opcode == H2WS_OP_TEXT ? H2WS_WS_EV_TEXT : H2WS_WS_EV_BINARY;
  ev->rsv = ws->msg_rsv;
  ev->data = ws->msg.data;
  ev->len = ws->msg.len;
  ev->whole = ws->msg.mem != ws->mem;
  ws->msg_opcode = 0;
  ws->delivered = 1;
}

/* Copies (and unmasks) n payload bytes of the current frame. */
static int take_payload(h2ws_ws *ws, const uint8_t *src, size_t n, h2ws_ws_event *ev) {
  uint64_t phase = ws->cur.length - ws->remaining;
  uint8_t *dst;
  if (h2ws_opcode_is_control(ws->cur.opcode)) {
    if (!ws->ctl) {
      ws->ctl = h2ws_mem_malloc(ws->mem, H2WS_CONTROL_MAX);
      if (!ws->ctl)
        return H2WS_ERR_NOMEM;
    }
    dst = ws->ctl + ws->ctl_len;
    ws->ctl_len = (uint8_t)(ws->ctl_len + n);
  } else {
    dst = reserve_msg(ws, n);
    if (!dst)
      return H2WS_ERR_NOMEM;
    ws->msg.len += n;
  }
  if (ws->cur.masked)
    h2ws_mask_copy(dst, src, n, ws->cur.mask, phase);
  else
    memcpy(dst, src, n);
  ws->remaining -= n;
  if (ws->msg_opcode == H2WS_OP_TEXT && !h2ws_opcode_is_control(ws->cur.opcode)) {
    ws->utf8 = h2ws_utf8_feed(ws->utf8, dst, n);
    if (ws->utf8 == H2WS_UTF8_REJECT) /* fail fast, mid-frame (section 8.1) */
      fail(ws, ev, H2WS_CLOSE_INVALID_PAYLOAD, "text message is not valid UTF-8");
  }
  return 0;
}

int h2ws_ws_recv(h2ws_ws *ws, const uint8_t *data, size_t len, size_t *consumed,
                 h2ws_ws_event *ev) {
  size_t pos = 0;
  ev->type = H2WS_WS_EV_NONE;
  ev->close_code = 0;
  ev->rsv = 0;
  ev->data = NULL;
  ev->len = 0;
  ev->reason = NULL;
  ev->whole = 0;
  h2ws_ws_event_done(ws);
  while (ev->type == H2WS_WS_EV_NONE) {
    if (ws->state == H2WS_WS_ST_CLOSED || ws->state == H2WS_WS_ST_FAILED) {
      pos = len; /* nothing after the close frame or an error counts */
      break;
    }
    if (ws->state == H2WS_WS_ST_HEADER) {
      if (pos == len)
        break;
      int n;
      if (ws->hdr_len == 0) {
        /* Common case: parse straight from the input. */
        if (len - pos >= 2 && check_start(ws, data[pos], data[pos + 1], ev))
          break;
        n = h2ws_frame_header_parse(data + pos, len - pos, &ws->cur);
        if (n == 0) { /* split header: stash what there is */
          size_t take = len - pos;
          memcpy(ws->hdr, data + pos, take);
          ws->hdr_len = (uint8_t)take;
          pos = len;
          break;
        }
        if (n > 0)
          pos += (size_t)n;
      } else {
        size_t old = ws->hdr_len;
        size_t take = len - pos;
        if (take > H2WS_FRAME_HEADER_MAX - old)
          take = H2WS_FRAME_HEADER_MAX - old;
        memcpy(ws->hdr + old, data + pos, take);
        size_t have = old + take;
        if (old < 2 && have >= 2 && check_start(ws, ws->hdr[0], ws->hdr[1], ev))
          break;
        n = h2ws_frame_header_parse(ws->hdr, have, &ws->cur);
        if (n == 0) {
          ws->hdr_len = (uint8_t)have;
          pos += take;
          break;
        }
        if (n > 0) {
          pos += (size_t)n - old;
          ws->hdr_len = 0;
        }
      }
      if (n < 0) {
        fail(ws, ev, H2WS_CLOSE_PROTOCOL_ERROR, "payload length has its top bit set");
        break;
      }
      if (check_length(ws, ev))
        break;
      begin_frame(ws);
      presize_msg(ws);
      if (ws->remaining == 0)
        end_frame(ws, ev);
      continue;
    }
    /* H2WS_WS_ST_PAYLOAD */
    if (pos == len)
      break;
    size_t n = len - pos;
    if (n > ws->remaining)
      n = (size_t)ws->remaining;
    int rv = take_payload(ws, data + pos, n, ev);
    if (rv) {
      *consumed = pos;
      return rv;
    }
    pos += n;
    if (ev->type == H2WS_WS_EV_NONE && ws->remaining == 0)
      end_frame(ws, ev);
  }
  *consumed = pos;
  return 0;
}

int h2ws_ws_frame_begin(h2ws_ws *ws, uint8_t *hdr, uint8_t key[4], unsigned opcode,
                        uint64_t len, int fin, unsigned rsv) {
  if (ws->close_sent)
    return H2WS_ERR_INVALID_STATE;
  if (rsv & ~(ws->cfg.rsv_allowed & 0x70))
    return H2WS_ERR_INVALID_ARGUMENT;
  if (!h2ws_opcode_is_known(opcode) || opcode == H2WS_OP_CLOSE)
    return H2WS_ERR_INVALID_ARGUMENT;
  if (h2ws_opcode_is_control(opcode)) {
    if (!fin || len > H2WS_CONTROL_MAX || rsv)
      return H2WS_ERR_INVALID_ARGUMENT;
  } else if (opcode == H2WS_OP_CONT) {
    if (!ws->send_opcode || rsv)
      return H2WS_ERR_INVALID_STATE;
  } else if (ws->send_opcode) {
    return H2WS_ERR_INVALID_STATE;
  }
  if (ws->cfg.client) {
    if (!ws->rng || h2ws_rng_mask_key(ws->rng, key))
      return H2WS_ERR_INTERNAL;
  }
  if (!h2ws_opcode_is_control(opcode)) {
    if (fin)
      ws->send_opcode = 0;
    else if (opcode != H2WS_OP_CONT)
      ws->send_opcode = (uint8_t)opcode;
  }
  return (int)h2ws_frame_header_write(hdr, fin, rsv, opcode, len, ws->cfg.client ? key : NULL);
}

/* Appends header + payload, masking in the client role; state already set. */
static int append_frame(h2ws_ws *ws, h2ws_buf *out, const uint8_t *hdr, size_t hlen,
                        const uint8_t key[4], const uint8_t *data, size_t len) {
  uint8_t *dst = h2ws_buf_reserve(out, hlen + len);
  if (!dst)
    return H2WS_ERR_NOMEM;
  memcpy(dst, hdr, hlen);
  if (len) {
    if (ws->cfg.client)
      h2ws_mask_copy(dst + hlen, data, len, key, 0);
    else
      memcpy(dst + hlen, data, len);
  }
  out->len += hlen + len;
  return 0;
}

int h2ws_ws_send_frame(h2ws_ws *ws, h2ws_buf *out, unsigned opcode, const uint8_t *data,
                       size_t len, int fin, unsigned rsv) {
  uint8_t hdr[H2WS_FRAME_HEADER_MAX], key[4] = {0};
  uint8_t saved = ws->send_opcode;
  int text = opcode == H2WS_OP_TEXT || (opcode == H2WS_OP_CONT && ws->send_opcode == H2WS_OP_TEXT);
  uint32_t utf8 = 0;
  if (text) {
    utf8 = h2ws_utf8_feed(opcode == H2WS_OP_TEXT ? H2WS_UTF8_ACCEPT : ws->send_utf8, data, len);
    if (utf8 == H2WS_UTF8_REJECT || (fin && utf8 != H2WS_UTF8_ACCEPT))
      return H2WS_ERR_INVALID_ARGUMENT;
  }
  /* Reserve first so that a failed allocation leaves the state as it was. */
  if (!h2ws_buf_reserve(out, H2WS_FRAME_HEADER_MAX + len))
    return H2WS_ERR_NOMEM;
  int hlen = h2ws_ws_frame_begin(ws, hdr, key, opcode, len, fin, rsv);
  if (hlen < 0)
    return hlen;
  int rv = append_frame(ws, out, hdr, (size_t)hlen, key, data, len);
  if (rv)
    ws->send_opcode = saved;
  else if (text)
    ws->send_utf8 = utf8;
  return rv;
}

int h2ws_ws_send_close(h2ws_ws *ws, h2ws_buf *out, unsigned code, const uint8_t *reason,
                       size_t len) {
  uint8_t payload[H2WS_CONTROL_MAX], hdr[H2WS_FRAME_HEADER_MAX], key[4] = {0};
  size_t plen = 0;
  if (ws->close_sent)
    return H2WS_ERR_INVALID_STATE;
  if (code == 0) {
    if (len)
      return H2WS_ERR_INVALID_ARGUMENT;
  } else {
    if (!h2ws_close_code_is_valid(code) || len > H2WS_CONTROL_MAX - 2 ||
        !h2ws_utf8_valid(reason, len))
      return H2WS_ERR_INVALID_ARGUMENT;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (len)
      memcpy(payload + 2, reason, len);
    plen = 2 + len;
  }
  if (ws->cfg.client && (!ws->rng || h2ws_rng_mask_key(ws->rng, key)))
    return H2WS_ERR_INTERNAL;
  size_t hlen = h2ws_frame_header_write(hdr, 1, 0, H2WS_OP_CLOSE, plen,
                                        ws->cfg.client ? key : NULL);
  int rv = append_frame(ws, out, hdr, hlen, key, payload, plen);
  if (rv == 0)
    ws->close_sent = 1;
  return rv;
}

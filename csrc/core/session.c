#include "session.h"

#include <nghttp2/nghttp2.h>
#include <string.h>
#include <strings.h>

#include "error.h"

enum {
  KIND_NEW,          /* headers arriving */
  KIND_HTTP,         /* plain request */
  KIND_WS_REQUESTED, /* extended CONNECT announced, waiting for accept/reject */
  KIND_WS,           /* accepted WebSocket */
  KIND_WS_CONNECTING,/* client: extended CONNECT sent, no response yet */
  KIND_ANSWERED      /* rejected or answered by the core: discard input */
};

typedef struct stream {
  struct stream *prev, *next; /* the session's list, for h2ws_session_del */
  int32_t id;
  uint8_t kind;
  uint8_t announced;     /* an event named this stream: STREAM_END owed */
  uint8_t has_provider;  /* a response with our data provider was submitted */
  uint8_t deferred;      /* the provider returned NGHTTP2_ERR_DEFERRED */
  uint8_t local_end;     /* END_STREAM once outq drains */
  uint8_t remote_ended;
  uint8_t paused;        /* RESUME_WRITING owed */
  uint8_t hdr_too_big;
  uint8_t ws_inited;
  uint32_t hdr_bytes;
  uint32_t nheaders;
  unsigned inbox;        /* delivered messages/chunks whose credit is still held */
  size_t partial;        /* received bytes not yet returned nor in a delivered message */
  h2ws_buf hdrs;         /* packed request headers while they arrive */
  h2ws_buf outq;         /* bytes for our DATA frames */
  /* A payload queued by reference (h2ws_session_ws_send_ref): it goes out
   * after everything in outq; anything queued later first copies what is
   * left of it into outq (ext_flatten). */
  const uint8_t *ext;
  size_t ext_len; /* bytes of it not sent yet */
  h2ws_session_release_cb ext_release; /* non-NULL while it is held */
  void *ext_ctx;
  h2ws_ws ws;
} stream;

struct h2ws_session {
  nghttp2_session *ng;
  const h2ws_mem *mem;
  nghttp2_mem ngmem;
  h2ws_session_config cfg;
  h2ws_session_event_cb cb;
  void *cb_data;
  stream *streams;
  size_t nstreams;
  uint8_t draining;
  uint8_t cb_failed;
  uint8_t settings_unsent; /* our first SETTINGS still to be rewritten (see patch_settings) */
  uint8_t client;          /* client role */
  h2ws_rng rng;            /* masking keys, client role */
  h2ws_buf *out;           /* the buffer h2ws_session_send fills, during the call */
  h2ws_buf *refs;          /* h2ws_session_send_refs: the h2ws_session_ref records */
  h2ws_session_retain_cb retain;
  uint8_t large_queued;    /* a stream queued H2WS_SESSION_LARGE_OUTPUT since the last
                              h2ws_session_output_bound that found none */
  uint8_t send_paused;     /* send_data_cb ended nghttp2_session_mem_send (see there) */
};

/*
 * MAX_CONCURRENT_STREAMS. RFC 9113 section 5.1.2 makes a HEADERS over the
 * advertised limit a stream error (REFUSED_STREAM here), but libnghttp2
 * (1.52) ends the whole connection. So nghttp2 is given a higher limit,
 * the value is rewritten to the configured one in our first SETTINGS as it
 * goes out, and on_begin_headers refuses the streams over it.
 */
#define NG_STREAM_MARGIN 1024u

/* ---------------------------------------------------------------------- */

void h2ws_session_config_init(h2ws_session_config *cfg) {
  cfg->enable_connect_protocol = 1;
  cfg->max_concurrent_streams = 100;
  cfg->initial_window_size = 256 * 1024;
  cfg->connection_window_size = 8 * 1024 * 1024;
  cfg->max_header_list_size = 16 * 1024;
  cfg->max_frame_size = 16384;
  cfg->write_high_water = 64 * 1024;
  h2ws_ws_config_init(&cfg->ws);
}

int h2ws_header_next(const uint8_t *block, size_t len, size_t *pos, h2ws_header *out) {
  if (*pos + 8 > len)
    return 0;
  uint32_t nl, vl;
  memcpy(&nl, block + *pos, 4);
  memcpy(&vl, block + *pos + 4, 4);
  out->name = block + *pos + 8;
  out->namelen = nl;
  out->value = out->name + nl;
  out->valuelen = vl;
  *pos += 8 + (size_t)nl + vl;
  return 1;
}

/* nghttp2 allocates through the session's allocator too. */
static void *ng_malloc(size_t n, void *ud) { return h2ws_mem_malloc(ud, n); }
static void ng_free(void *p, void *ud) { h2ws_mem_free(ud, p); }
static void *ng_calloc(size_t nmemb, size_t size, void *ud) {
  if (size && nmemb > SIZE_MAX / size)
    return NULL;
  void *p = h2ws_mem_malloc(ud, nmemb * size);
  if (p)
    memset(p, 0, nmemb * size);
  return p;
}
static void *ng_realloc(void *p, size_t n, void *ud) { return h2ws_mem_realloc(ud, p, n); }

static int emit(h2ws_session *s, h2ws_session_event *ev) {
  if (s->cb(ev, s->cb_data)) {
    s->cb_failed = 1;
    return -1;
  }
  return 0;
}

static void event_init(h2ws_session_event *ev, int type, int32_t sid) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  ev->stream_id = sid;
}

static stream *get_stream(h2ws_session *s, int32_t sid) {
  return sid > 0 ? nghttp2_session_get_stream_user_data(s->ng, sid) : NULL;
}

/* Bytes the stream has queued for its DATA frames. */
static size_t stream_pending(const stream *st) {
  return h2ws_buf_pending(&st->outq) + st->ext_len;
}

/* Gives the by-reference payload back to its owner. */
static void ext_release(stream *st) {
  h2ws_session_release_cb release = st->ext_release;
  void *ctx = st->ext_ctx;
  st->ext = NULL;
  st->ext_len = 0;
  st->ext_release = NULL;
  st->ext_ctx = NULL;
  if (release)
    release(ctx);
}

/* Before anything is appended to outq: what is left of the by-reference
 * payload moves into outq (copied), so that the order holds. */
static int ext_flatten(stream *st) {
  if (!st->ext_release)
    return 0;
  if (st->ext_len && h2ws_buf_append(&st->outq, st->ext, st->ext_len) < 0)
    return H2WS_ERR_NOMEM;
  ext_release(st);
  return 0;
}

static void stream_free(h2ws_session *s, stream *st) {
  if (st->prev)
    st->prev->next = st->next;
  else
    s->streams = st->next;
  if (st->next)
    st->next->prev = st->prev;
  s->nstreams--;
  h2ws_buf_free(&st->hdrs);
  h2ws_buf_free(&st->outq);
  ext_release(st);
  if (st->ws_inited)
    h2ws_ws_free(&st->ws);
  h2ws_mem_free(s->mem, st);
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */

/*
 * The data provider of every stream we answer. It copies nothing: it tells
 * nghttp2 how many bytes of the stream's send queue the next DATA frame
 * carries (NGHTTP2_DATA_FLAG_NO_COPY), and send_data_cb below appends the
 * frame header and those bytes straight to the output buffer. One copy per
 * payload byte on the way out (queue to output) instead of two (queue to
 * nghttp2's frame buffer, then to the output).
 */
static ssize_t read_cb(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)ng;
  (void)sid;
  (void)buf;
  h2ws_session *s = ud;
  stream *st = src->ptr;
  size_t pending = stream_pending(st);
  size_t n = pending < length ? pending : length;
  size_t left = pending - n;
  if (left == 0) {
    if (st->local_end) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (n == 0)
        h2ws_buf_free(&st->outq);
    } else if (n == 0) {
      st->deferred = 1;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  if (n)
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* send_data_cb takes the bytes */
  if (st->paused && left <= s->cfg.write_high_water / 4) {
    st->paused = 0;
    h2ws_session_event ev;
    event_init(&ev, H2WS_SEV_RESUME_WRITING, st->id);
    if (emit(s, &ev))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return (ssize_t)n;
}

/* A DATA frame read_cb sized: its 9-byte header, then `length` bytes from
 * the head of the stream's queue, appended to the buffer h2ws_session_send
 * is filling (nghttp2 calls this from inside nghttp2_session_mem_send, in
 * frame order), or for h2ws_session_send_refs partly recorded by reference.
 * We never pad (no padding callback). */
static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud) {
  (void)ng;
  h2ws_session *s = ud;
  stream *st = src->ptr;
  h2ws_buf *out = s->out;
  if (!out || frame->data.padlen || length > stream_pending(st))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  size_t q = h2ws_buf_pending(&st->outq);
  if (q > length)
    q = length;
  size_t x = length - q; /* from the payload queued by reference */
  /* h2ws_session_send_refs: a large enough piece of it is not copied; a
   * record says where it goes, and holds its owner. */
  int by_ref = s->refs && x >= H2WS_SESSION_REF_MIN;
  size_t inl = 9 + q + (by_ref ? 0 : x);
  uint8_t *dst = h2ws_buf_reserve(out, inl);
  if (!dst || (by_ref && !h2ws_buf_reserve(s->refs, sizeof(h2ws_session_ref))))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  memcpy(dst, framehd, 9);
  memcpy(dst + 9, h2ws_buf_begin(&st->outq), q);
  h2ws_buf_consume(&st->outq, q);
  if (x) {
    if (by_ref) {
      h2ws_session_ref r = {h2ws_buf_pending(out) + 9 + q, st->ext, x, st->ext_ctx};
      h2ws_buf_append(s->refs, &r, sizeof r); /* reserved: cannot fail */
      s->retain(st->ext_ctx);                 /* before ext_release may drop it */
    } else {
      memcpy(dst + 9 + q, st->ext, x);
    }
    st->ext += x;
    st->ext_len -= x;
    if (!st->ext_len)
      ext_release(st);
  }
  out->len += inl;
  if (!stream_pending(st)) {
    if (st->local_end) {
      h2ws_buf_free(&st->outq);
    } else if (s->nstreams == 1) {
      /* The only stream sent all it had: end this mem_send here, before
       * nghttp2 asks read_cb for more, is told NGHTTP2_ERR_DEFERRED and
       * detaches the stream, to attach it again on the next message
       * (kick): in a request/response exchange that round trip cost
       * nghttp2 more than sending the frame. The item stays queued: the
       * next mem_send asks read_cb again, which then has the next
       * message or defers. With other streams open, their DATA must
       * follow, so this is not done. */
      s->send_paused = 1;
      return NGHTTP2_ERR_PAUSE;
    }
  }
  return 0;
}

static void kick(h2ws_session *s, stream *st) {
  if (st->has_provider && st->deferred) {
    st->deferred = 0;
    nghttp2_session_resume_data(s->ng, st->id);
  }
}

static int is_connection_specific(const uint8_t *name, size_t len) {
  static const char *const drop[] = {"connection", "keep-alive", "proxy-connection",
                                     "transfer-encoding", "upgrade", "te"};
  for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
    if (strlen(drop[i]) == len && strncasecmp((const char *)name, drop[i], len) == 0)
      return 1;
  return 0;
}

/* Submits a response: status, then hdrs (filtered), then `extra`. */
static int submit_response(h2ws_session *s, stream *st, unsigned status, const h2ws_header *hdrs,
                           size_t n, const nghttp2_nv *extra, size_t nextra, int end_stream,
                           int drop_content_length) {
  if (status < 100 || status > 999)
    return H2WS_ERR_INVALID_ARGUMENT;
  char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                  (char)('0' + status % 10), 0};
  nghttp2_nv stack[32], *nva = stack;
  size_t cap = 1 + n + nextra;
  if (cap > 32) {
    nva = h2ws_mem_malloc(s->mem, cap * sizeof *nva);
    if (!nva)
      return H2WS_ERR_NOMEM;
  }
  size_t k = 0;
  nva[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
  for (size_t i = 0; i < n; i++) {
    if (hdrs[i].namelen == 0 || hdrs[i].name[0] == ':' ||
        is_connection_specific(hdrs[i].name, hdrs[i].namelen))
      continue;
    if (drop_content_length && hdrs[i].namelen == 14 &&
        strncasecmp((const char *)hdrs[i].name, "content-length", 14) == 0)
      continue;
    nva[k++] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value, hdrs[i].namelen,
                            hdrs[i].valuelen, NGHTTP2_NV_FLAG_NONE};
  }
  for (size_t i = 0; i < nextra; i++)
    nva[k++] = extra[i];
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_cb};
  int rv = nghttp2_submit_response(s->ng, st->id, nva, k, end_stream ? NULL : &prd);
  if (nva != stack)
    h2ws_mem_free(s->mem, nva);
  if (rv)
    return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : H2WS_ERR_INVALID_STATE;
  st->has_provider = !end_stream;
  if (end_stream)
    st->local_end = 1;
  return 0;
}

#define NV(n, v)                                                                   \
  (nghttp2_nv) {                                                                   \
    (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE \
  }

/* The core answers a bad request itself: status, a short text body. */
static int auto_respond(h2ws_session *s, stream *st, unsigned status, const char *body,
                        int version_hint) {
  nghttp2_nv extra[2];
  size_t nextra = 0;
  extra[nextra++] = NV("content-type", "text/plain; charset=utf-8");
  if (version_hint)
    extra[nextra++] = NV("sec-websocket-version", "13");
  st->kind = KIND_ANSWERED;
  h2ws_buf_free(&st->hdrs);
  if (h2ws_buf_append(&st->outq, body, strlen(body)) < 0)
    return H2WS_ERR_NOMEM;
  st->local_end = 1;
  return submit_response(s, st, status, NULL, 0, extra, nextra, 0, 0);
}

/* ---------------------------------------------------------------------- */
/* Input                                                                   */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  h2ws_session *s = ud;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  if (s->nstreams >= s->cfg.max_concurrent_streams) {
    /* Over the advertised limit: no stream data, the rest is ignored. */
    return nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                     NGHTTP2_REFUSED_STREAM) == NGHTTP2_ERR_NOMEM
               ? NGHTTP2_ERR_CALLBACK_FAILURE
               : 0;
  }
  stream *st = h2ws_mem_malloc(s->mem, sizeof *st);
  if (!st)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  memset(st, 0, sizeof *st);
  st->id = frame->hd.stream_id;
  h2ws_buf_init(&st->hdrs, s->mem);
  h2ws_buf_init(&st->outq, s->mem);
  st->next = s->streams;
  if (s->streams)
    s->streams->prev = st;
  s->streams = st;
  s->nstreams++;
  nghttp2_session_set_stream_user_data(ng, st->id, st);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  (void)ng;
  (void)flags;
  h2ws_session *s = ud;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  stream *st = get_stream(s, frame->hd.stream_id);
  if (!st || st->hdr_too_big)
    return 0;
  /* Request heads (server), or the response to our extended CONNECT
   * (client); trailers are ignored (and refused on WebSocket streams). */
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST && st->kind != KIND_WS_CONNECTING)
    return 0;
  /* RFC 9113 section 6.5.2: name + value + 32 per field. */
  uint64_t add = (uint64_t)namelen + valuelen + 32;
  if (st->hdr_bytes + add > s->cfg.max_header_list_size) {
    st->hdr_too_big = 1;
    h2ws_buf_free(&st->hdrs);
    return 0;
  }
  st->hdr_bytes += (uint32_t)add;
  uint8_t *p = h2ws_buf_reserve(&st->hdrs, 8 + namelen + valuelen);
  if (!p)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  uint32_t nl = (uint32_t)namelen, vl = (uint32_t)valuelen;
  memcpy(p, &nl, 4);
  memcpy(p + 4, &vl, 4);
  memcpy(p + 8, name, namelen);
  memcpy(p + 8 + namelen, value, valuelen);
  st->hdrs.len += 8 + namelen + valuelen;
  st->nheaders++;
  return 0;
}

static int hdr_is(const h2ws_header *h, const char *name) {
  size_t n = strlen(name);
  return h->namelen == n && memcmp(h->name, name, n) == 0;
}

static int value_is_ci(const h2ws_header *h, const char *v) {
  size_t n = strlen(v);
  return h->valuelen == n && strncasecmp((const char *)h->value, v, n) == 0;
}

static int process_request(h2ws_session *s, stream *st, int end_stream) {
  const h2ws_header *method = NULL, *protocol = NULL, *version = NULL;
  int has_content_length = 0;
  h2ws_header hv[4]; /* storage for the few we look at */
  h2ws_header h;
  size_t pos = 0;
  while (h2ws_header_next(st->hdrs.data, st->hdrs.len, &pos, &h)) {
    if (hdr_is(&h, ":method")) {
      hv[0] = h;
      method = &hv[0];
    } else if (hdr_is(&h, ":protocol")) {
      hv[1] = h;
      protocol = &hv[1];
    } else if (hdr_is(&h, "sec-websocket-version")) {
      hv[2] = h;
      version = &hv[2];
    } else if (hdr_is(&h, "content-length")) {
      has_content_length = 1;
    }
  }
  if (end_stream)
    st->remote_ended = 1;
  int is_ext_connect = method && protocol && value_is_ci(method, "CONNECT");
  if (st->hdr_too_big)
    return auto_respond(s, st, 431, "request header list too large\n", 0);
  if (is_ext_connect) {
    if (s->draining) {
      st->kind = KIND_ANSWERED;
      return nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM)
                 ? H2WS_ERR_NOMEM
                 : 0;
    }
    if (!value_is_ci(protocol, "websocket"))
      return auto_respond(s, st, 501, "unsupported :protocol\n", 0);
    if (end_stream)
      return auto_respond(s, st, 400, "extended CONNECT must not end the stream\n", 0);
    if (has_content_length)
      return auto_respond(s, st, 400, "content-length on a WebSocket request\n", 0);
    if (!version || version->valuelen != 2 || memcmp(version->value, "13", 2) != 0)
      return auto_respond(s, st, 400, "sec-websocket-version must be 13\n", 1);
    st->kind = KIND_WS_REQUESTED;
  } else {
    st->kind = KIND_HTTP;
  }
  h2ws_session_event ev;
  event_init(&ev, st->kind == KIND_HTTP ? H2WS_SEV_REQUEST : H2WS_SEV_WEBSOCKET, st->id);
  ev.code = (uint32_t)end_stream;
  ev.headers = st->hdrs.data;
  ev.headers_len = st->hdrs.len;
  ev.nheaders = st->nheaders;
  st->announced = 1;
  int rv = emit(s, &ev);
  h2ws_buf_free(&st->hdrs);
  return rv ? H2WS_ERR_CALLBACK : 0;
}

/* Client: the response to our extended CONNECT (RFC 8441 section 5). A 2xx
 * without END_STREAM opens the WebSocket; anything else is reported with
 * its status, and its body (if any) comes as BODY events. */
static int process_response(h2ws_session *s, stream *st, int end_stream) {
  unsigned status = 0;
  h2ws_header h;
  size_t pos = 0;
  while (h2ws_header_next(st->hdrs.data, st->hdrs.len, &pos, &h)) {
    if (hdr_is(&h, ":status") && h.valuelen == 3) {
      status = (unsigned)(h.value[0] - '0') * 100 + (unsigned)(h.value[1] - '0') * 10 +
               (unsigned)(h.value[2] - '0');
    }
  }
  if (status >= 100 && status < 200) {
    /* Informational: the final response follows. */
    h2ws_buf_free(&st->hdrs);
    st->nheaders = 0;
    st->hdr_bytes = 0;
    return 0;
  }
  if (end_stream)
    st->remote_ended = 1;
  if (status >= 200 && status < 300 && !end_stream && !st->hdr_too_big) {
    h2ws_ws_config cfg = s->cfg.ws;
    cfg.client = 1;
    h2ws_ws_init(&st->ws, &cfg, s->mem, &s->rng);
    st->ws_inited = 1;
    st->kind = KIND_WS;
  } else {
    st->kind = KIND_HTTP;
  }
  h2ws_session_event ev;
  event_init(&ev, H2WS_SEV_RESPONSE, st->id);
  ev.code = status;
  ev.headers = st->hdrs.data;
  ev.headers_len = st->hdrs.len;
  ev.nheaders = st->nheaders;
  ev.credit = st->kind == KIND_WS; /* the tunnel opened */
  st->announced = 1;
  int rv = emit(s, &ev);
  h2ws_buf_free(&st->hdrs);
  if (rv)
    return H2WS_ERR_CALLBACK;
  if (end_stream && st->kind == KIND_HTTP) {
    event_init(&ev, H2WS_SEV_BODY_END, st->id);
    if (emit(s, &ev))
      return H2WS_ERR_CALLBACK;
  }
  return 0;
}

static int return_window(h2ws_session *s, stream *st) {
  if (st->inbox == 0 && st->partial) {
    size_t n = st->partial;
    st->partial = 0;
    if (nghttp2_session_consume_stream(s->ng, st->id, n) == NGHTTP2_ERR_NOMEM)
      return -1;
  }
  return 0;
}

/* Feeds DATA of an accepted WebSocket stream to its codec. */
static int feed_ws(h2ws_session *s, stream *st, const uint8_t *data, size_t len) {
  while (len) {
    h2ws_ws_event wev;
    size_t used;
    if (h2ws_ws_recv(&st->ws, data, len, &used, &wev) < 0)
      return -1;
    data += used;
    len -= used;
    st->partial += used;
    h2ws_session_event ev;
    switch (wev.type) {
    case H2WS_WS_EV_NONE:
      break;
    case H2WS_WS_EV_TEXT:
    case H2WS_WS_EV_BINARY:
      event_init(&ev, wev.type == H2WS_WS_EV_TEXT ? H2WS_SEV_TEXT : H2WS_SEV_BINARY, st->id);
      ev.data = wev.data;
      ev.len = wev.len;
      ev.code = (uint32_t)wev.whole;
      ev.credit = st->partial;
      st->partial = 0;
      st->inbox++;
      if (emit(s, &ev))
        return -1;
      h2ws_ws_event_done(&st->ws);
      continue;
    case H2WS_WS_EV_PING:
      /* Answered here (RFC 6455 section 5.5.2), unless our close went out.
       * A peer that pings without reading our output gets no more pongs
       * than the queue's high-water mark allows (section 5.5.3 lets us
       * answer only the latest ping). */
      if (!st->ws.close_sent && !st->local_end &&
          stream_pending(st) <= s->cfg.write_high_water) {
        if (ext_flatten(st) ||
            h2ws_ws_send_frame(&st->ws, &st->outq, H2WS_OP_PONG, wev.data, wev.len, 1, 0) ==
            H2WS_ERR_NOMEM)
          return -1;
        kick(s, st);
      }
      continue;
    case H2WS_WS_EV_PONG:
      event_init(&ev, H2WS_SEV_PONG, st->id);
      ev.data = wev.data;
      ev.len = wev.len;
      if (emit(s, &ev))
        return -1;
      continue;
    case H2WS_WS_EV_CLOSE:
      /* Section 5.5.1: answer with a close frame (echoing the code), then
       * END_STREAM after it; if ours went first, the handshake is done. */
      if (!st->ws.close_sent) {
        unsigned code = wev.close_code == H2WS_CLOSE_NO_STATUS ? 0 : wev.close_code;
        if (ext_flatten(st) ||
            h2ws_ws_send_close(&st->ws, &st->outq, code, NULL, 0) == H2WS_ERR_NOMEM)
          return -1;
      }
      st->local_end = 1;
      kick(s, st);
      event_init(&ev, H2WS_SEV_CLOSE, st->id);
      ev.code = wev.close_code;
      ev.data = wev.data;
      ev.len = wev.len;
      if (emit(s, &ev))
        return -1;
      continue;
    case H2WS_WS_EV_ERROR:
      /* Section 7.1.7: fail the WebSocket with the code, then END_STREAM. */
      if (!st->ws.close_sent) {
        const char *r = wev.reason;
        size_t rl = strlen(r);
        if (rl > 123)
          rl = 123;
        if (ext_flatten(st) ||
            h2ws_ws_send_close(&st->ws, &st->outq, wev.close_code, (const uint8_t *)r, rl) ==
                H2WS_ERR_NOMEM)
          return -1;
      }
      st->local_end = 1;
      kick(s, st);
      event_init(&ev, H2WS_SEV_WS_FAILED, st->id);
      ev.code = wev.close_code;
      ev.reason = wev.reason;
      if (emit(s, &ev))
        return -1;
      continue;
    }
    break;
  }
  h2ws_ws_event_done(&st->ws); /* every event is out: no buffer kept idle */
  return return_window(s, st);
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
  (void)flags;
  h2ws_session *s = ud;
  /* The connection window comes back as soon as the bytes are parsed. */
  if (nghttp2_session_consume_connection(ng, len) == NGHTTP2_ERR_NOMEM)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  stream *st = get_stream(s, sid);
  if (!st || st->kind == KIND_ANSWERED || st->kind == KIND_NEW) {
    nghttp2_session_consume_stream(ng, sid, len);
    return 0;
  }
  if (st->kind == KIND_WS_REQUESTED) {
    /* RFC 8441 section 5: no tunnel before our 2xx. */
    nghttp2_session_consume_stream(ng, sid, len);
    st->kind = KIND_ANSWERED;
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_PROTOCOL_ERROR);
    return 0;
  }
  if (st->kind == KIND_WS) {
    if (st->remote_ended)
      return 0;
    return feed_ws(s, st, data, len) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
  }
  h2ws_session_event ev; /* KIND_HTTP */
  event_init(&ev, H2WS_SEV_BODY, sid);
  ev.data = data;
  ev.len = len;
  ev.credit = len;
  st->inbox++;
  return emit(s, &ev) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_remote_end(h2ws_session *s, stream *st) {
  if (st->remote_ended)
    return 0;
  st->remote_ended = 1;
  h2ws_session_event ev;
  if (st->kind == KIND_HTTP) {
    event_init(&ev, H2WS_SEV_BODY_END, st->id);
    return emit(s, &ev);
  }
  if (st->kind == KIND_WS_REQUESTED) {
    /* The tunnel ended before it opened: nothing to accept. */
    st->kind = KIND_ANSWERED;
    return nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR)
               ? -1
               : 0;
  }
  if (st->kind == KIND_WS) {
    if (!st->ws.close_received && st->ws.state != H2WS_WS_ST_FAILED) {
      event_init(&ev, H2WS_SEV_PEER_ENDED, st->id);
      if (emit(s, &ev))
        return -1;
    }
    st->local_end = 1;
    kick(s, st);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  h2ws_session *s = ud;
  int32_t sid = frame->hd.stream_id;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS: {
    stream *st = get_stream(s, sid);
    if (!st)
      return 0;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (st->kind == KIND_WS_CONNECTING) {
      int rv = process_response(s, st, end);
      return rv == H2WS_ERR_CALLBACK ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      int rv = process_request(s, st, end);
      if (rv == H2WS_ERR_CALLBACK || rv == H2WS_ERR_NOMEM)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      return 0;
    }
    if (st->kind == KIND_WS || st->kind == KIND_WS_REQUESTED) {
      /* HEADERS in the middle of a tunnel: RFC 8441 section 5. */
      st->kind = KIND_ANSWERED;
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_PROTOCOL_ERROR);
      return 0;
    }
    if (end && on_remote_end(s, st))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  case NGHTTP2_DATA: {
    stream *st = get_stream(s, sid);
    if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && on_remote_end(s, st))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  case NGHTTP2_SETTINGS: {
    if (frame->hd.flags & NGHTTP2_FLAG_ACK)
      return 0;
    h2ws_session_event ev;
    event_init(&ev, H2WS_SEV_SETTINGS, 0);
    ev.code = nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL);
    ev.credit = nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return emit(s, &ev) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
  }
  case NGHTTP2_GOAWAY: {
    h2ws_session_event ev;
    event_init(&ev, H2WS_SEV_GOAWAY, frame->goaway.last_stream_id);
    ev.code = frame->goaway.error_code;
    return emit(s, &ev) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
  }
  default:
    return 0;
  }
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  h2ws_session *s = ud;
  if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  stream *st = get_stream(s, frame->hd.stream_id);
  /* A complete answer to a request still being sent: RFC 9113 section 8.1
   * lets us stop the rest with RST_STREAM(NO_ERROR). Never on WebSockets,
   * which end with both END_STREAMs. */
  if (st && !st->remote_ended && st->kind != KIND_WS)
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t error_code, void *ud) {
  h2ws_session *s = ud;
  stream *st = nghttp2_session_get_stream_user_data(ng, sid);
  if (!st)
    return 0;
  nghttp2_session_set_stream_user_data(ng, sid, NULL);
  int rv = 0;
  if (st->announced) {
    h2ws_session_event ev;
    event_init(&ev, H2WS_SEV_STREAM_END, sid);
    ev.code = error_code;
    rv = emit(s, &ev);
  }
  stream_free(s, st);
  return rv ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* ---------------------------------------------------------------------- */
/* Session                                                                 */

static int session_new(h2ws_session **out, const h2ws_session_config *cfg, const h2ws_mem *mem,
                       h2ws_session_event_cb cb, void *user_data, int client);

int h2ws_session_server_new(h2ws_session **out, const h2ws_session_config *cfg,
                            const h2ws_mem *mem, h2ws_session_event_cb cb, void *user_data) {
  return session_new(out, cfg, mem, cb, user_data, 0);
}

int h2ws_session_client_new(h2ws_session **out, const h2ws_session_config *cfg,
                            const h2ws_mem *mem, h2ws_session_event_cb cb, void *user_data) {
  return session_new(out, cfg, mem, cb, user_data, 1);
}

static int session_new(h2ws_session **out, const h2ws_session_config *cfg, const h2ws_mem *mem,
                       h2ws_session_event_cb cb, void *user_data, int client) {
  if (!mem)
    mem = h2ws_mem_default();
  h2ws_session *s = h2ws_mem_malloc(mem, sizeof *s);
  if (!s)
    return H2WS_ERR_NOMEM;
  memset(s, 0, sizeof *s);
  s->mem = mem;
  if (cfg)
    s->cfg = *cfg;
  else
    h2ws_session_config_init(&s->cfg);
  s->cfg.ws.client = 0;
  if (s->cfg.max_frame_size < 16384 || s->cfg.max_frame_size > 16777215 ||
      s->cfg.initial_window_size > 0x7FFFFFFF || s->cfg.connection_window_size > 0x7FFFFFFF) {
    h2ws_mem_free(mem, s);
    return H2WS_ERR_INVALID_ARGUMENT;
  }
  s->cb = cb;
  s->cb_data = user_data;
  s->client = (uint8_t)client;
  h2ws_rng_init(&s->rng);
  s->ngmem = (nghttp2_mem){(void *)mem, ng_malloc, ng_free, ng_calloc, ng_realloc};

  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs)) {
    h2ws_mem_free(mem, s);
    return H2WS_ERR_NOMEM;
  }
  if (nghttp2_option_new(&opt)) {
    nghttp2_session_callbacks_del(cbs);
    h2ws_mem_free(mem, s);
    return H2WS_ERR_NOMEM;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = client ? nghttp2_session_client_new3(&s->ng, cbs, s, opt, &s->ngmem)
                  : nghttp2_session_server_new3(&s->ng, cbs, s, opt, &s->ngmem);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv) {
    h2ws_mem_free(mem, s);
    return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : H2WS_ERR_INTERNAL;
  }
  nghttp2_settings_entry iv[5];
  size_t niv = 0;
  uint32_t ng_max_streams = s->cfg.max_concurrent_streams;
  if (client) {
    /* A client accepts no pushes and opens no streams to itself. */
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  } else if (ng_max_streams <= UINT32_MAX - NG_STREAM_MARGIN) {
    ng_max_streams += NG_STREAM_MARGIN;
    s->settings_unsent = 1;
  }
  if (!client)
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ng_max_streams};
  iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                       s->cfg.initial_window_size};
  iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                       s->cfg.max_header_list_size};
  if (s->cfg.max_frame_size != 16384)
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, s->cfg.max_frame_size};
  if (s->cfg.enable_connect_protocol && !client) /* never sent by clients (RFC 8441 section 3) */
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
  rv = nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv);
  if (!rv && s->cfg.connection_window_size > 65535)
    rv = nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                               (int32_t)s->cfg.connection_window_size);
  if (rv) {
    nghttp2_session_del(s->ng);
    h2ws_mem_free(mem, s);
    return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : H2WS_ERR_INTERNAL;
  }
  *out = s;
  return 0;
}

void h2ws_session_del(h2ws_session *s) {
  if (!s)
    return;
  nghttp2_session_del(s->ng); /* calls no callbacks */
  while (s->streams)
    stream_free(s, s->streams);
  h2ws_rng_free(&s->rng);
  h2ws_mem_free(s->mem, s);
}

static int map_ng_error(h2ws_session *s, int rv, const char **detail) {
  if (detail)
    *detail = s->cb_failed ? "event callback failed" : nghttp2_strerror(rv);
  if (s->cb_failed)
    return H2WS_ERR_CALLBACK;
  if (rv == NGHTTP2_ERR_NOMEM)
    return H2WS_ERR_NOMEM;
  if (rv == NGHTTP2_ERR_CALLBACK_FAILURE)
    return H2WS_ERR_NOMEM; /* our callbacks fail only for memory */
  return H2WS_ERR_PROTOCOL;
}

int h2ws_session_recv(h2ws_session *s, const uint8_t *data, size_t len, const char **detail) {
  if (s->cb_failed)
    return H2WS_ERR_CALLBACK;
  ssize_t rv = nghttp2_session_mem_recv(s->ng, data, len);
  if (rv < 0)
    return map_ng_error(s, (int)rv, detail);
  return 0;
}

/* Writes the configured MAX_CONCURRENT_STREAMS into `p` if it holds our
 * first SETTINGS frame (nghttp2 hands out one frame per mem_send call).
 * Returns 1 if it did. */
static int patch_settings(h2ws_session *s, uint8_t *p, size_t n) {
  if (n < 9 || p[3] != NGHTTP2_SETTINGS || (p[4] & NGHTTP2_FLAG_ACK))
    return 0;
  size_t len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
  if (len > n - 9)
    return 0;
  uint32_t v = s->cfg.max_concurrent_streams;
  for (size_t i = 9; i + 6 <= 9 + len; i += 6) {
    if (p[i] == 0 && p[i + 1] == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
      p[i + 2] = (uint8_t)(v >> 24);
      p[i + 3] = (uint8_t)(v >> 16);
      p[i + 4] = (uint8_t)(v >> 8);
      p[i + 5] = (uint8_t)v;
    }
  }
  return 1;
}

int h2ws_session_send(h2ws_session *s, h2ws_buf *out) {
  if (s->cb_failed)
    return H2WS_ERR_CALLBACK;
  s->out = out; /* DATA frames go there from send_data_cb */
  int rv = 0, resumed = 0;
  for (;;) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(s->ng, &p);
    if (n < 0) {
      rv = map_ng_error(s, (int)n, NULL);
      break;
    }
    if (n == 0) {
      /* After a pause (send_data_cb), frames other than DATA may still be
       * queued: they go out now (first: nghttp2 sends them before DATA). */
      if (s->send_paused) {
        s->send_paused = 0;
        if (!resumed && nghttp2_session_get_outbound_queue_size(s->ng)) {
          resumed = 1; /* once: a frame nghttp2 holds back must not loop */
          continue;
        }
      }
      break;
    }
    if (h2ws_buf_append(out, p, (size_t)n) < 0) {
      rv = H2WS_ERR_NOMEM;
      break;
    }
    if (s->settings_unsent && patch_settings(s, out->data + out->len - (size_t)n, (size_t)n))
      s->settings_unsent = 0;
  }
  s->out = NULL;
  return rv;
}

int h2ws_session_send_refs(h2ws_session *s, h2ws_buf *out, h2ws_buf *refs,
                           h2ws_session_retain_cb retain) {
  s->refs = refs;
  s->retain = retain;
  int rv = h2ws_session_send(s, out);
  s->refs = NULL;
  s->retain = NULL;
  return rv;
}

/* See h2ws_session_output_bound; `refs`: for h2ws_session_send_refs, where
 * the payloads queued by reference are not copied (but for pieces under
 * H2WS_SESSION_REF_MIN: at the start and the end of a payload at most). */
static size_t output_bound(h2ws_session *s, int refs) {
  if (!s->large_queued)
    return 0;
  size_t total = 0, queued = 0;
  for (stream *st = s->streams; st; st = st->next) {
    size_t pending = stream_pending(st);
    if (!pending || !st->has_provider)
      continue;
    queued += pending;
    if (refs && st->ext_len)
      pending = h2ws_buf_pending(&st->outq) + 2 * H2WS_SESSION_REF_MIN;
    int32_t w = nghttp2_session_get_stream_remote_window_size(s->ng, st->id);
    if (w > 0)
      total += pending < (size_t)w ? pending : (size_t)w;
  }
  if (queued < H2WS_SESSION_LARGE_OUTPUT)
    s->large_queued = 0;
  int32_t cw = nghttp2_session_get_remote_window_size(s->ng);
  if (total > (size_t)(cw > 0 ? cw : 0))
    total = (size_t)(cw > 0 ? cw : 0);
  return total;
}

size_t h2ws_session_output_bound(h2ws_session *s) { return output_bound(s, 0); }

size_t h2ws_session_output_bound_refs(h2ws_session *s) { return output_bound(s, 1); }

int h2ws_session_want_io(h2ws_session *s) {
  return nghttp2_session_want_read(s->ng) || nghttp2_session_want_write(s->ng);
}

int h2ws_session_ws_accept(h2ws_session *s, int32_t sid, const h2ws_header *hdrs, size_t n) {
  stream *st = get_stream(s, sid);
  if (!st || st->kind != KIND_WS_REQUESTED)
    return H2WS_ERR_INVALID_STATE;
  int rv = submit_response(s, st, 200, hdrs, n, NULL, 0, 0, 1);
  if (rv)
    return rv;
  st->kind = KIND_WS;
  h2ws_ws_init(&st->ws, &s->cfg.ws, s->mem, NULL);
  st->ws_inited = 1;
  return 0;
}

int h2ws_session_ws_connect(h2ws_session *s, const h2ws_header *hdrs, size_t n, int32_t *sid_out) {
  if (!s->client)
    return H2WS_ERR_INVALID_STATE;
  if (s->draining || !nghttp2_session_check_request_allowed(s->ng))
    return H2WS_ERR_INVALID_STATE;
  nghttp2_nv stack[32], *nva = stack;
  if (n > 32) {
    nva = h2ws_mem_malloc(s->mem, n * sizeof *nva);
    if (!nva)
      return H2WS_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++)
    nva[i] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value, hdrs[i].namelen,
                          hdrs[i].valuelen, NGHTTP2_NV_FLAG_NONE};
  stream *st = h2ws_mem_malloc(s->mem, sizeof *st);
  if (!st) {
    if (nva != stack)
      h2ws_mem_free(s->mem, nva);
    return H2WS_ERR_NOMEM;
  }
  memset(st, 0, sizeof *st);
  h2ws_buf_init(&st->hdrs, s->mem);
  h2ws_buf_init(&st->outq, s->mem);
  st->kind = KIND_WS_CONNECTING;
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_cb};
  int32_t sid = nghttp2_submit_request(s->ng, NULL, nva, n, &prd, st);
  if (nva != stack)
    h2ws_mem_free(s->mem, nva);
  if (sid < 0) {
    h2ws_mem_free(s->mem, st);
    return sid == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : H2WS_ERR_INVALID_STATE;
  }
  st->id = sid;
  st->has_provider = 1;
  st->announced = 1;
  st->next = s->streams;
  if (s->streams)
    s->streams->prev = st;
  s->streams = st;
  s->nstreams++;
  *sid_out = sid;
  return 0;
}

int h2ws_session_respond(h2ws_session *s, int32_t sid, unsigned status, const h2ws_header *hdrs,
                         size_t n, int end_stream) {
  stream *st = get_stream(s, sid);
  if (!st || (st->kind != KIND_HTTP && st->kind != KIND_WS_REQUESTED) || st->has_provider ||
      st->local_end)
    return H2WS_ERR_INVALID_STATE;
  if (st->kind == KIND_WS_REQUESTED && status >= 200 && status < 300)
    return H2WS_ERR_INVALID_ARGUMENT; /* a 2xx would open the tunnel: use ws_accept */
  int rv = submit_response(s, st, status, hdrs, n, NULL, 0, end_stream, 0);
  if (rv == 0 && st->kind == KIND_WS_REQUESTED)
    st->kind = KIND_ANSWERED;
  return rv;
}

static int over_high_water(h2ws_session *s, stream *st) {
  size_t pending = stream_pending(st);
  if (pending >= H2WS_SESSION_LARGE_OUTPUT)
    s->large_queued = 1;
  if (pending > s->cfg.write_high_water) {
    st->paused = 1;
    return 1;
  }
  return 0;
}

int h2ws_session_send_body(h2ws_session *s, int32_t sid, const uint8_t *data, size_t len,
                           int end) {
  stream *st = get_stream(s, sid);
  if (!st || !st->has_provider || st->local_end || st->kind == KIND_WS)
    return H2WS_ERR_INVALID_STATE;
  if (h2ws_buf_append(&st->outq, data, len) < 0)
    return H2WS_ERR_NOMEM;
  if (end)
    st->local_end = 1;
  kick(s, st);
  return over_high_water(s, st);
}

int h2ws_session_ws_send(h2ws_session *s, int32_t sid, unsigned opcode, const uint8_t *data,
                         size_t len, int fin) {
  stream *st = get_stream(s, sid);
  if (!st || st->kind != KIND_WS || st->local_end)
    return H2WS_ERR_INVALID_STATE;
  int rv = ext_flatten(st);
  if (!rv)
    rv = h2ws_ws_send_frame(&st->ws, &st->outq, opcode, data, len, fin, 0);
  if (rv)
    return rv;
  kick(s, st);
  return over_high_water(s, st);
}

int h2ws_session_ws_send_ref(h2ws_session *s, int32_t sid, const uint8_t *data, size_t len,
                             h2ws_session_release_cb release, void *ctx) {
  stream *st = get_stream(s, sid);
  if (!st || st->kind != KIND_WS || st->local_end)
    return H2WS_ERR_INVALID_STATE;
  if (s->client || st->ext_release || !len) {
    /* masked (client role), or one is held already: copy */
    int rv = h2ws_session_ws_send(s, sid, H2WS_OP_BINARY, data, len, 1);
    if (rv >= 0)
      release(ctx);
    return rv;
  }
  uint8_t hdr[H2WS_FRAME_HEADER_MAX], key[4];
  if (!h2ws_buf_reserve(&st->outq, sizeof hdr))
    return H2WS_ERR_NOMEM;
  int hlen = h2ws_ws_frame_begin(&st->ws, hdr, key, H2WS_OP_BINARY, len, 1, 0);
  if (hlen < 0)
    return hlen;
  h2ws_buf_append(&st->outq, hdr, (size_t)hlen); /* reserved: cannot fail */
  st->ext = data;
  st->ext_len = len;
  st->ext_release = release;
  st->ext_ctx = ctx;
  kick(s, st);
  return over_high_water(s, st);
}

int h2ws_session_ws_close(h2ws_session *s, int32_t sid, unsigned code, const uint8_t *reason,
                          size_t len) {
  stream *st = get_stream(s, sid);
  if (!st || st->kind != KIND_WS || st->local_end)
    return H2WS_ERR_INVALID_STATE;
  int rv = ext_flatten(st);
  if (!rv)
    rv = h2ws_ws_send_close(&st->ws, &st->outq, code, reason, len);
  if (rv)
    return rv;
  /* A client ends its side with its close frame, in the same DATA frame, as
   * Chromium does: nothing may follow a close frame anyway, and a server that
   * forgets a stream once it answered the close (Hypercorn, INTEROP.md) drops
   * the whole connection on a later END_STREAM. */
  if (s->client || st->ws.close_received || st->remote_ended)
    st->local_end = 1;
  kick(s, st);
  return 0;
}

int h2ws_session_reset(h2ws_session *s, int32_t sid, uint32_t error_code) {
  stream *st = get_stream(s, sid);
  if (!st)
    return H2WS_ERR_INVALID_STATE;
  st->kind = KIND_ANSWERED;
  int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, sid, error_code);
  return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : rv ? H2WS_ERR_INVALID_ARGUMENT : 0;
}

int h2ws_session_consume(h2ws_session *s, int32_t sid, size_t credit) {
  if (sid <= 0)
    return H2WS_ERR_INVALID_ARGUMENT;
  if (credit && nghttp2_session_consume_stream(s->ng, sid, credit) == NGHTTP2_ERR_NOMEM)
    return H2WS_ERR_NOMEM;
  stream *st = get_stream(s, sid);
  if (st && st->inbox) {
    st->inbox--;
    if (return_window(s, st))
      return H2WS_ERR_NOMEM;
  }
  return 0;
}

int h2ws_session_shutdown_notice(h2ws_session *s) {
  s->draining = 1;
  int rv = nghttp2_submit_shutdown_notice(s->ng);
  return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : rv ? H2WS_ERR_INVALID_STATE : 0;
}

int h2ws_session_goaway(h2ws_session *s, uint32_t error_code) {
  s->draining = 1;
  int rv = nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                                 nghttp2_session_get_last_proc_stream_id(s->ng), error_code, NULL,
                                 0);
  return rv == NGHTTP2_ERR_NOMEM ? H2WS_ERR_NOMEM : rv ? H2WS_ERR_INVALID_STATE : 0;
}

size_t h2ws_session_open_streams(h2ws_session *s) { return s->nstreams; }

size_t h2ws_session_stream_buffered(h2ws_session *s, int32_t sid) {
  stream *st = get_stream(s, sid);
  return st ? stream_pending(st) : 0;
}

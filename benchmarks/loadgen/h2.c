/* HTTP/2 connections with libnghttp2: WebSockets over extended CONNECT
 * (RFC 8441). nghttp2 frames; the streams' data providers pull WebSocket
 * frames from ws.c. */
#include "loadgen.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_HIGH (256 * 1024)

static nghttp2_session_callbacks *callbacks;

static struct stream *stream_of(nghttp2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s, id);
}

/* The streams' data provider. It copies nothing: it sizes the next DATA
 * frame (NGHTTP2_DATA_FLAG_NO_COPY) and send_data_cb writes the frame header
 * and the WebSocket bytes (generated and masked in one pass) straight into
 * the connection's output buffer. */
static ssize_t read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s;
    (void)id;
    (void)buf;
    (void)user;
    struct stream *st = src->ptr;
    size_t n = stream_tx_avail(st, length);
    /* END_STREAM goes with the frame that ends our close frame */
    bool end = st->close_queued && stream_tx_avail(st, SIZE_MAX) <= length;
    if (n == 0 && !end) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        st->end_sent = true;
    }
    return (ssize_t)n;
}

/* A DATA frame read_cb sized: called from inside nghttp2_session_mem_send
 * in frame order, after everything before it was handed to
 * h2_conn_produce. */
static int send_data_cb(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *user)
{
    (void)s;
    struct conn *c = user;
    struct stream *st = src->ptr;
    if (frame->data.padlen)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    buf_append(&c->out, framehd, 9);
    buf_reserve(&c->out, length);
    size_t n = stream_tx_fill(st, c->out.p + c->out.len, length);
    c->out.len += n;
    return n == length ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static ssize_t read_length_cb(nghttp2_session *s, uint8_t type, int32_t id, int32_t conn_window,
                              int32_t stream_window, uint32_t max_frame, void *user)
{
    (void)s;
    (void)type;
    (void)id;
    (void)user;
    ssize_t n = 1 << 20; /* NO_COPY: no frame buffer to fill, bigger frames cost less */
    if ((ssize_t)max_frame < n)
        n = max_frame;
    if (conn_window < n)
        n = conn_window;
    if (stream_window < n)
        n = stream_window;
    return n < 1 ? 1 : n;
}

static void open_streams(struct conn *c)
{
    nghttp2_session *s = c->h2;
    uint32_t allowed =
        nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    long n = c->nstreams;
    if ((uint64_t)allowed < (uint64_t)n) {
        static bool told;
        if (!told)
            fprintf(stderr,
                    "loadgen: the server allows %u concurrent streams per connection; "
                    "opening %u of the %ld asked, the rest count as streams_failed\n",
                    allowed, allowed, n);
        told = true;
        n = allowed;
    }
    const char *scheme = OPT->tls ? "https" : "http";
    static char authority[512];
    if (!authority[0])
        snprintf(authority, sizeof authority, "%s", OPT->authority);
#define NV(n, v)                                                                                 \
    {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                                  \
     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}
    nghttp2_nv hdrs[] = {
        NV(":method", "CONNECT"),   NV(":protocol", "websocket"), NV(":scheme", scheme),
        NV(":path", OPT->path),     NV(":authority", authority),
        NV("sec-websocket-version", "13"),
    };
#undef NV
    for (long i = 0; i < c->nstreams; i++) {
        struct stream *st = &c->streams[i];
        if (i >= n) {
            run_on_stream_failed(st, NULL);
            continue;
        }
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_cb};
        int32_t id = nghttp2_submit_request(s, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &prd, st);
        if (id < 0) {
            run_on_stream_failed(st, nghttp2_strerror(id));
            continue;
        }
        st->id = id;
        st->state = ST_REQUESTED;
        c->requested++;
    }
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct conn *c = user;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) &&
        !c->h2_settings_seen) {
        c->h2_settings_seen = true;
        c->state = C_OPEN;
        if (nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) != 1) {
            static bool told;
            if (!told)
                run_error("connection %d: the server's SETTINGS lack "
                          "SETTINGS_ENABLE_CONNECT_PROTOCOL=1: it does not accept WebSockets "
                          "over HTTP/2 (RFC 8441 section 3)",
                          c->index);
            told = true;
            for (long i = 0; i < c->nstreams; i++)
                run_on_stream_failed(&c->streams[i], NULL);
            return 0;
        }
        open_streams(c);
        return 0;
    }
    struct stream *st = stream_of(s, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
        st->state == ST_REQUESTED) {
        c->requested--;
        if (st->status == 200 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->state = ST_OPEN;
            run_on_stream_open(st);
        } else {
            char why[64];
            snprintf(why, sizeof why, "extended CONNECT answered with :status %d", st->status);
            run_on_stream_failed(st, why);
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        }
        return 0;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        st->end_received = true;
        if (!st->close_received && (st->state == ST_OPEN || st->state == ST_CLOSING))
            run_error("stream %d: END_STREAM without a close frame", st->id);
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    if (f->hd.type != NGHTTP2_HEADERS || nlen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    struct stream *st = stream_of(s, f->hd.stream_id);
    if (st) {
        int v = 0;
        for (size_t i = 0; i < vlen && i < 3; i++)
            v = v * 10 + (value[i] - '0');
        st->status = v;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct stream *st = stream_of(s, id);
    if (!st || (st->state != ST_OPEN && st->state != ST_CLOSING))
        return 0;
    if (stream_rx(st, data, len) < 0) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
        st->state = ST_DONE;
        run_on_stream_done(st);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    struct conn *c = user;
    struct stream *st = stream_of(s, id);
    if (!st || st->state == ST_DONE || st->state == ST_FAILED)
        return 0;
    if (st->state == ST_REQUESTED) {
        char why[96];
        c->requested--;
        snprintf(why, sizeof why, "reset before an answer (%s)", nghttp2_http2_strerror(code));
        run_on_stream_failed(st, why);
        return 0;
    }
    if (!(st->close_received && st->close_sent && code == NGHTTP2_NO_ERROR))
        run_error("stream %d: closed before the close handshake ended (%s; close frames: "
                  "sent %d, received %d)",
                  id, nghttp2_http2_strerror(code), st->close_sent, st->close_received);
    st->state = ST_DONE;
    run_on_stream_done(st);
    return 0;
}

static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int err, void *user)
{
    (void)s;
    struct conn *c = user;
    if (f->hd.type == NGHTTP2_HEADERS)
        run_error("connection %d: a request could not be sent: %s", c->index,
                  nghttp2_strerror(err));
    return 0;
}

static int init_callbacks(void)
{
    if (callbacks)
        return 0;
    if (nghttp2_session_callbacks_new(&callbacks) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, on_frame_not_send);
    nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, read_length_cb);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data_cb);
    return 0;
}

int h2_conn_init(struct conn *c)
{
    if (init_callbacks() < 0)
        return -1;
    if (nghttp2_session_client_new(&c->h2, callbacks, c) != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, OPT->window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, OPT->max_frame},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 3) != 0)
        return -1;
    if (nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)OPT->window) != 0)
        return -1;
    return 0;
}

int h2_conn_recv(struct conn *c, const uint8_t *data, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(c->h2, data, len);
    if (n < 0) {
        conn_fail(c, "HTTP/2: %s", nghttp2_strerror((int)n));
        return -1;
    }
    if (c->streams_live == 0 && !c->h2_goaway_sent) {
        c->h2_goaway_sent = true;
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    }
    return 0;
}

int h2_conn_produce(struct conn *c)
{
    if (c->streams_live == 0 && !c->h2_goaway_sent) {
        c->h2_goaway_sent = true;
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    }
    while (c->out.len - c->out.off < OUT_HIGH) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0) {
            conn_fail(c, "HTTP/2: %s", nghttp2_strerror((int)n));
            return -1;
        }
        if (n == 0)
            break;
        buf_append(&c->out, p, (size_t)n);
    }
    return 0;
}

void h2_stream_resume(struct stream *st)
{
    if (st->deferred && st->id > 0 && st->conn->h2) {
        st->deferred = false;
        nghttp2_session_resume_data(st->conn->h2, st->id);
    }
}

void h2_conn_free(struct conn *c)
{
    if (c->h2)
        nghttp2_session_del(c->h2);
    c->h2 = NULL;
}


void h2_global_free(void)
{
    if (callbacks)
        nghttp2_session_callbacks_del(callbacks);
    callbacks = NULL;
}

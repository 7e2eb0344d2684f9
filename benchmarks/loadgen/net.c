/* Sockets, TLS and buffered I/O for the connections. */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_HIGH (256 * 1024)      /* produce at most this much per send */
#define WRITE_BUDGET (4096 * 1024) /* send at most this much per flush */
#define READ_BUDGET (4096 * 1024)  /* read at most this much per readiness event */

static struct sockaddr_storage addr;
static socklen_t addrlen;
static SSL_CTX *ssl_ctx;
static int epfd = -1;
static bool host_is_ip;

int net_epoll_fd(void)
{
    return epfd;
}

void net_set_epoll_fd(int fd)
{
    epfd = fd;
}

int net_resolve(const struct options *o)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "loadgen: cannot resolve %s:%s: %s\n", o->host, o->port,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    struct in6_addr tmp;
    host_is_ip = inet_pton(AF_INET, o->host, &tmp) == 1 || inet_pton(AF_INET6, o->host, &tmp) == 1;
    return 0;
}

/* -- buffers ------------------------------------------------------------------ */

void buf_reserve(struct buf *b, size_t n)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len >= n)
        return;
    if (b->off > 0) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    b->p = p;
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

/* -- TLS ------------------------------------------------------------------------ */

int tls_init(const struct options *o)
{
    if (!o->tls)
        return 0;
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx)
        return -1;
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (o->proto == PROTO_H2)
        SSL_CTX_set_alpn_protos(ssl_ctx, (const unsigned char *)"\x02h2", 3);
    else if (o->proto == PROTO_H1)
        SSL_CTX_set_alpn_protos(ssl_ctx, (const unsigned char *)"\x08http/1.1", 9);
    if (o->cafile) {
        if (SSL_CTX_load_verify_locations(ssl_ctx, o->cafile, NULL) != 1) {
            fprintf(stderr, "loadgen: cannot load --cafile %s\n", o->cafile);
            ERR_print_errors_fp(stderr);
            return -1;
        }
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    return 0;
}

void tls_free(void)
{
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    ssl_ctx = NULL;
}

static void ssl_error_text(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "%s", errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
}

/* -- connections ------------------------------------------------------------- */

static void set_events(struct conn *c, bool out)
{
    if (c->want_write == out)
        return;
    c->want_write = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}


int conn_start(struct conn *c)
{
    c->started_ns = now_ns();
    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_CONNECTING;
        conn_fail(c, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect: %s", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_write = true;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void start_protocol(struct conn *c)
{
    c->state = C_HANDSHAKE;
    if (OPT->proto == PROTO_H2) {
        if (h2_conn_init(c) < 0) {
            conn_fail(c, "cannot create the nghttp2 session");
            return;
        }
    } else if (OPT->proto == PROTO_H1) {
        h1_conn_init(c);
    } else {
        c->state = C_OPEN;
        c->streams[0].state = ST_OPEN;
        run_on_stream_open(&c->streams[0]);
    }
    conn_mark_dirty(c);
}

static void tls_handshake(struct conn *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
        if (OPT->proto == PROTO_H2 && !(alen == 2 && memcmp(alpn, "h2", 2) == 0)) {
            conn_fail(c, "the server did not select ALPN \"h2\" (got \"%.*s\")", (int)alen,
                      alpn ? (const char *)alpn : "");
            return;
        }
        set_events(c, false);
        start_protocol(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_events(c, false);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        set_events(c, true);
    } else {
        char msg[256];
        ssl_error_text(msg, sizeof msg);
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK)
            conn_fail(c, "TLS handshake: %s (certificate: %s)", msg,
                      X509_verify_cert_error_string(v));
        else
            conn_fail(c, "TLS handshake: %s", msg);
    }
}

static void connected(struct conn *c)
{
    if (!OPT->tls) {
        set_events(c, false);
        start_protocol(c);
        return;
    }
    c->ssl = SSL_new(ssl_ctx);
    if (!c->ssl) {
        conn_fail(c, "SSL_new failed");
        return;
    }
    SSL_set_fd(c->ssl, c->fd);
    if (!host_is_ip)
        SSL_set_tlsext_host_name(c->ssl, OPT->host);
    if (OPT->cafile) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (host_is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(vp, OPT->host);
        else
            X509_VERIFY_PARAM_set1_host(vp, OPT->host, 0);
    }
    c->state = C_TLS;
    tls_handshake(c);
}

static void dispatch(struct conn *c, const uint8_t *p, size_t n)
{
    if (OPT->proto == PROTO_H2) {
        h2_conn_recv(c, p, n);
    } else if (c->state == C_HANDSHAKE) {
        h1_conn_recv(c, p, n);
    } else if (c->state == C_OPEN) {
        struct stream *st = &c->streams[0];
        if (st->state == ST_OPEN || st->state == ST_CLOSING) {
            if (stream_rx(st, p, n) < 0)
                conn_fail(c, "WebSocket protocol error");
        }
    }
    if (c->state != C_DONE)
        conn_mark_dirty(c);
}

static void on_eof(struct conn *c)
{
    c->peer_eof = true;
    /* Streams whose close handshake is complete (both close frames) are done
     * even if the server hangs up before END_STREAM (h2): counted apart, not
     * as errors. */
    for (long i = 0; i < c->nstreams; i++) {
        struct stream *st = &c->streams[i];
        if ((st->state == ST_OPEN || st->state == ST_CLOSING) && st->close_received &&
            st->close_sent) {
            st->state = ST_DONE;
            if (OPT->proto == PROTO_H2)
                run_on_unclean_end(st);
            run_on_stream_done(st);
        }
    }
    if (OPT->proto == PROTO_TCP && run_closing() && c->streams[0].state == ST_OPEN &&
        c->streams[0].recv_seq == c->streams[0].send_seq && !c->streams[0].tx_active) {
        c->streams[0].state = ST_DONE;
        run_on_stream_done(&c->streams[0]);
    }
    if (OPT->proto == PROTO_H1 && c->streams[0].close_received && c->streams[0].state != ST_DONE) {
        /* the server sent its close frame and hung up: already reported */
        c->streams[0].state = ST_DONE;
        run_on_stream_done(&c->streams[0]);
    }
    if (c->streams_live == 0) {
        conn_close(c);
        return;
    }
    conn_fail(c, "the server closed the connection (%ld WebSocket(s) still open)", c->streams_live);
}

static void do_read(struct conn *c)
{
    static uint8_t rbuf[256 * 1024];
    size_t total = 0;
    while (total < READ_BUDGET && c->state != C_DONE) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_read(c->ssl, rbuf, sizeof rbuf);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    return;
                if (e == SSL_ERROR_WANT_WRITE) {
                    set_events(c, true);
                    return;
                }
                if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
                    on_eof(c);
                    return;
                }
                char msg[256];
                ssl_error_text(msg, sizeof msg);
                if (c->streams_live == 0)
                    conn_close(c);
                else
                    conn_fail(c, "TLS read: %s", msg);
                return;
            }
            n = r;
        } else {
            n = recv(c->fd, rbuf, sizeof rbuf, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    continue;
                if (c->streams_live == 0)
                    conn_close(c);
                else
                    conn_fail(c, "recv: %s", strerror(errno));
                return;
            }
            if (n == 0) {
                on_eof(c);
                return;
            }
        }
        total += (size_t)n;
        dispatch(c, rbuf, (size_t)n);
        if (!c->ssl && (size_t)n < sizeof rbuf)
            break; /* drained: level-triggered epoll reports anything newer */
    }
}

void conn_on_event(struct conn *c, uint32_t events)
{
    if (c->state == C_DONE)
        return;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            conn_fail(c, "connect to %s:%s: %s", OPT->host, OPT->port, strerror(err));
            return;
        }
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            connected(c);
        return;
    }
    if (c->state == C_TLS) {
        tls_handshake(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        do_read(c);
    if (c->state != C_DONE && (events & EPOLLOUT))
        conn_mark_dirty(c);
}

/* Writes the pending output: one send (plain sockets) or SSL_write until it
 * would block. Returns the bytes taken, or -1 when the connection failed. */
static ssize_t write_out(struct conn *c)
{
    struct buf *b = &c->out;
    size_t taken = 0;
    while (b->off < b->len) {
        size_t n = b->len - b->off;
        if (c->ssl) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_write(c->ssl, b->p + b->off, n > (1u << 30) ? (1 << 30) : (int)n);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                char msg[256];
                ssl_error_text(msg, sizeof msg);
                conn_fail(c, "TLS write: %s", msg);
                return -1;
            }
            b->off += (size_t)r;
            taken += (size_t)r;
        } else {
            ssize_t r = send(c->fd, b->p + b->off, n, MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                conn_fail(c, "send: %s", strerror(errno));
                return -1;
            }
            b->off += (size_t)r;
            taken += (size_t)r;
            break; /* one send per call: conn_flush decides whether to go on */
        }
    }
    if (b->off == b->len)
        b->off = b->len = 0;
    return (ssize_t)taken;
}

/* Produces output into c->out, up to OUT_HIGH pending. Returns whether the
 * connection has more to produce, or -1 when it failed. */
static int produce(struct conn *c)
{
    if (OPT->proto == PROTO_H2) {
        if (h2_conn_produce(c) < 0)
            return -1;
        return c->h2 && nghttp2_session_want_write(c->h2);
    }
    if (c->state != C_OPEN)
        return 0;
    struct stream *st = &c->streams[0];
    size_t pending = c->out.len - c->out.off;
    if (pending < OUT_HIGH && stream_tx_pending(st)) {
        size_t room = OUT_HIGH - pending;
        buf_reserve(&c->out, room);
        c->out.len += stream_tx_fill(st, c->out.p + c->out.len, room);
        stream_after_tx(st);
    }
    return stream_tx_pending(st);
}

void conn_flush(struct conn *c)
{
    if (c->state != C_HANDSHAKE && c->state != C_OPEN)
        return;
    /* Produce and send in OUT_HIGH pieces (each one still in cache when the
     * kernel copies it) until the socket is full, nothing is left, or the
     * flush has sent WRITE_BUDGET (other connections get their turn). */
    size_t budget = WRITE_BUDGET;
    int more;
    for (;;) {
        more = produce(c);
        if (more < 0 || c->state == C_DONE)
            return;
        ssize_t r = write_out(c);
        if (r < 0)
            return;
        if (r == 0 || c->out.off < c->out.len || !more || (size_t)r >= budget)
            break;
        budget -= (size_t)r;
    }
    if (OPT->proto == PROTO_H2 && c->h2)
        more = nghttp2_session_want_write(c->h2);
    bool pending = c->out.off < c->out.len;
    if (!pending && c->streams_live == 0 && !more) {
        conn_close(c);
        return;
    }
    set_events(c, pending || more);
}

void conn_close(struct conn *c)
{
    if (c->state == C_DONE)
        return;
    if (c->ssl) {
        ERR_clear_error();
        if (!c->failed)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = C_DONE;
    h2_conn_free(c);
    buf_free(&c->out);
    buf_free(&c->h1_in);
    /* anything still live was cut off */
    for (long i = 0; i < c->nstreams; i++) {
        struct stream *st = &c->streams[i];
        if (st->state == ST_NEW || st->state == ST_REQUESTED)
            run_on_stream_failed(st, c->failed ? NULL : "connection closed");
        else if (st->state == ST_OPEN || st->state == ST_CLOSING) {
            st->state = ST_DONE;
            run_on_stream_done(st);
        }
    }
}

void conn_fail(struct conn *c, const char *fmt, ...)
{
    if (c->state == C_DONE)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    run_error("connection %d: %s", c->index, msg);
    c->failed = true;
    conn_close(c);
}

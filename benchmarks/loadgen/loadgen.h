/* loadgen: a WebSocket load generator over HTTP/2 (RFC 8441), HTTP/1.1
 * (RFC 6455 Upgrade) and raw TCP, on libnghttp2, epoll and OpenSSL.
 *
 * Written independently of the h2ws core (nothing from csrc/ is included or
 * linked) so that it measures the server rather than mirroring it.
 *
 * One thread, one epoll loop, non-blocking sockets. Files, one per concern:
 *   main.c  options, the phases of a run, the event loop, the report
 *   net.c   sockets, TLS, buffered reads and writes
 *   ws.c    RFC 6455 framing for the client side, payload patterns, checks
 *   h2.c    HTTP/2 connections with libnghttp2 (extended CONNECT)
 *   h1.c    HTTP/1.1 Upgrade handshakes
 *   hist.c  the log-linear latency histogram
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proto { PROTO_H2, PROTO_H1, PROTO_TCP };

/* Options, as parsed from the command line (main.c). */
struct options {
    enum proto proto;
    const char *host;
    const char *port;
    const char *path;
    const char *authority; /* NULL: host:port */
    bool tls;
    const char *cafile;
    long connections;
    long streams;
    long inflight;
    uint64_t size;
    bool text;
    double duration;
    bool duration_set;
    double warmup;
    uint64_t messages; /* 0: no limit */
    uint32_t window;
    uint32_t max_frame;
    int cpu; /* -1: no pinning */
    bool hold;
    double connect_rate;
    bool json;
    bool verbose;
};

/* -- hist.c ---------------------------------------------------------------- */

/* Log-linear histogram of nanosecond values: 128 linear sub-buckets per power
 * of two, so a reported value is within 1/256 of the true one (< 0.4 %).
 * Values above 2^40 ns (about 18 minutes) land in the last bucket. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB + HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max;
    double sum;
    uint64_t buckets[HIST_BUCKETS];
};

/* Adds one value (ns). */
void hist_add(struct hist *h, uint64_t ns);
/* The value (ns) at quantile q in [0, 1]: the midpoint of the bucket holding
 * it, capped by the exact maximum. 0 when empty. */
double hist_quantile(const struct hist *h, double q);

/* -- ws.c: streams, framing, patterns -------------------------------------- */

/* Payload words: word k of message (stream key s, sequence q) is a mix of s
 * and q xor k times an odd constant, so any corruption, truncation, reorder or
 * cross-stream mix-up shows. Text payloads map each byte to 0x20..0x5f. */

struct conn;

enum stream_state {
    ST_NEW,       /* not requested yet */
    ST_REQUESTED, /* extended CONNECT / Upgrade sent, no answer yet */
    ST_OPEN,      /* WebSocket open */
    ST_CLOSING,   /* our close frame queued or sent */
    ST_DONE,      /* both close frames seen (and END_STREAM both ways on h2) */
    ST_FAILED     /* never opened (refused, rejected, limit, connection lost) */
};

struct stream {
    struct conn *conn;
    int32_t id; /* HTTP/2 stream id; 0 for h1/tcp */
    enum stream_state state;
    uint64_t key; /* pattern key: unique per stream in the run */

    /* send side */
    uint64_t send_seq;   /* next message sequence number to start */
    uint64_t queued;     /* messages allowed but not started */
    bool tx_active;      /* a data frame is being emitted */
    uint64_t tx_off;     /* bytes of the current frame emitted (header incl.) */
    uint8_t tx_hdr[14];
    unsigned tx_hlen;
    uint32_t tx_mask;
    uint8_t ctl[320]; /* queued control frames (masked), sent between frames */
    unsigned ctl_len, ctl_off;
    bool close_queued;  /* our close frame is in ctl */
    bool close_sent;    /* fully handed to the transport */
    bool end_sent;      /* h2: END_STREAM handed to nghttp2 */
    bool deferred;      /* h2: the data provider returned DEFERRED */
    uint64_t *sent_at;  /* ring of inflight start times, ns (inflight slots) */

    /* receive side */
    uint64_t recv_seq; /* next message sequence number expected */
    uint8_t rx_hdr[14];
    unsigned rx_hlen, rx_need;
    bool rx_in_payload;
    uint64_t rx_left; /* payload bytes left in the current frame */
    uint8_t rx_op;    /* opcode of the current frame */
    bool rx_fin;
    uint8_t msg_op;   /* opcode of the message being received (0: none) */
    uint64_t msg_off; /* payload bytes of it received so far */
    bool msg_bad;     /* already counted as a mismatch */
    uint8_t rx_ctl[125];
    unsigned rx_ctl_len;
    bool close_received;
    bool end_received; /* h2: the server's END_STREAM */
    int status;        /* h2: the response's :status */
};

/* Cheap PRNG (xorshift64*), seeded from getrandom(): masking keys and h1 keys. */
uint64_t rng_next(void);
void rng_seed(void);

/* Fills dst with n bytes of message (s, q) from payload offset off, masked
 * with mask (the frame's key, the mask cycle starting at payload offset 0);
 * mask 0 gives the plain payload. */
void pattern_fill(uint8_t *dst, uint64_t s, uint64_t q, uint64_t off, size_t n, bool text,
                  uint32_t mask);
/* True when src[0..n) equals message (s, q) at offset off (unmasked). */
bool pattern_check(const uint8_t *src, uint64_t s, uint64_t q, uint64_t off, size_t n,
                   bool text);

/* Writes up to cap bytes of what the stream has to send (control frames
 * between frames first, then data frames) into buf; returns the count. On a
 * raw TCP stream (no framing) messages are plain payload bytes. */
size_t stream_tx_fill(struct stream *st, uint8_t *buf, size_t cap);
/* How many bytes stream_tx_fill(st, buf, cap) would produce now (at most
 * cap), without producing them. */
size_t stream_tx_avail(const struct stream *st, size_t cap);
/* True when stream_tx_fill would produce something. */
bool stream_tx_pending(const struct stream *st);
/* Feeds bytes received for the stream (frames from the server, or raw bytes
 * on TCP). Returns 0, or -1 on a protocol error (reported, counted). */
int stream_rx(struct stream *st, const uint8_t *data, size_t len);
/* Queues a masked close frame with this code (once). */
void stream_queue_close(struct stream *st, uint16_t code);
/* After the transport took bytes from the stream (h1: the close handshake may be
 * complete). */
void stream_after_tx(struct stream *st);

/* -- main.c: hooks the protocol code calls ---------------------------------- */

uint64_t now_ns(void);
/* An echo of the stream's next expected message is complete. */
void run_on_echo(struct stream *st, bool ok);
/* The stream has something new to send (resume h2 data, mark dirty). */
void run_stream_wants_tx(struct stream *st);
/* The stream opened / failed to open / ended (state already set). */
void run_on_stream_open(struct stream *st);
void run_on_stream_failed(struct stream *st, const char *why);
void run_on_stream_done(struct stream *st);
/* h2: the connection ended after both close frames but before END_STREAM. */
void run_on_unclean_end(struct stream *st);
/* Counts an error and prints it (rate-limited) on stderr. */
void run_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Counts a payload mismatch and prints the first few. */
void run_mismatch(struct stream *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool run_sending(void); /* new messages may start */
bool run_closing(void); /* streams should close once idle */
/* The options of the run (set once by main). */
extern const struct options *OPT;

/* -- net.c: connections ----------------------------------------------------- */

enum conn_state {
    C_IDLE,       /* not started */
    C_CONNECTING, /* TCP connect in progress */
    C_TLS,        /* TLS handshake */
    C_HANDSHAKE,  /* h1: waiting for 101; h2: waiting for SETTINGS */
    C_OPEN,
    C_DONE /* closed (cleanly or not) */
};

struct buf {
    uint8_t *p;
    size_t off, len, cap;
};

struct conn {
    int fd;
    int index;
    enum conn_state state;
    SSL *ssl;
    bool want_write;      /* EPOLLOUT registered */
    bool dirty;           /* in the flush list */
    bool failed;
    bool peer_eof;        /* the server closed its side */
    uint64_t started_ns;  /* connect() time, for the connect timeout */
    struct buf out;
    /* h1 handshake */
    char h1_key[32];
    struct buf h1_in;
    /* h2 */
    nghttp2_session *h2;
    bool h2_settings_seen;
    bool h2_goaway_sent;
    /* streams (1 for h1/tcp) */
    struct stream *streams;
    long nstreams;
    long streams_live; /* not DONE/FAILED */
    long requested;    /* requested, not answered yet */
};

/* Starts a non-blocking connect (and registers the fd). 0 or -1. */
int conn_start(struct conn *c);
/* Handles readiness for the connection (events from epoll). */
void conn_on_event(struct conn *c, uint32_t events);
/* Produces output (h2 frames or stream bytes) and writes it: one send per
 * call. Closes the connection when it is finished. */
void conn_flush(struct conn *c);
/* Fails the connection: counts an error, fails unopened streams, closes. */
void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes the socket (TLS close_notify first, best effort). */
void conn_close(struct conn *c);
/* Marks the connection for a flush in this loop iteration. */
void conn_mark_dirty(struct conn *c);
/* Makes room for n more bytes at b->p + b->len (compacting or growing). */
void buf_reserve(struct buf *b, size_t n);
/* Appends to a buffer, growing it. */
void buf_append(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);
/* Global TLS setup: 0 or -1 (message printed). */
int tls_init(const struct options *o);
void tls_free(void);
/* Resolves host:port once: 0 or -1. */
int net_resolve(const struct options *o);
int net_epoll_fd(void);
void net_set_epoll_fd(int fd);

/* -- h2.c ------------------------------------------------------------------- */

/* Creates the nghttp2 session and queues the preface + SETTINGS. 0 or -1. */
int h2_conn_init(struct conn *c);
/* Feeds received bytes. 0 or -1 (the connection failed). */
int h2_conn_recv(struct conn *c, const uint8_t *data, size_t len);
/* Moves what nghttp2 wants to send into c->out (up to a high mark). 0 or -1. */
int h2_conn_produce(struct conn *c);
/* The stream has new data for its data provider. */
void h2_stream_resume(struct stream *st);
void h2_conn_free(struct conn *c);
/* Frees the shared nghttp2 callbacks at exit. */
void h2_global_free(void);

/* -- h1.c ------------------------------------------------------------------- */

/* Queues the Upgrade request. */
void h1_conn_init(struct conn *c);
/* Feeds bytes during the handshake; 0 or -1 (failed). Bytes after the
 * response head go to the stream. */
int h1_conn_recv(struct conn *c, const uint8_t *data, size_t len);

#endif

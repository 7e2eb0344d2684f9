/* RFC 6455 framing for the client side, payload patterns and their checks. */
#include "loadgen.h"

#include <string.h>
#include <sys/random.h>

/* -- PRNG --------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

void rng_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s || s == 0)
        s = now_ns() | 1;
    rng_state = s;
}

uint64_t rng_next(void)
{
    /* xorshift64*: fast, not cryptographic (fine for load-generator masks) */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* -- payload patterns --------------------------------------------------------- */

/* Word k of message (s, q) is BLOCK[k % BLOCK_WORDS] xor a constant of the
 * message and of k / BLOCK_WORDS (its segment): a fixed pseudo-random 4 KiB
 * block (L1-resident) makes any shift inside a segment show, the per-segment
 * constant any swap of segments, truncation or cross-message/stream mix-up. A
 * segment's words are then one load and one xor each (plus the text fold and
 * the mask), 16 bytes at a time (SSE2). */
#define BLOCK_BITS 9
#define BLOCK_WORDS (1u << BLOCK_BITS)

static uint64_t block[BLOCK_WORDS];
static bool block_ready;

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void block_init(void)
{
    for (unsigned i = 0; i < BLOCK_WORDS; i++)
        block[i] = mix64(0x243F6A8885A308D3ull + i);
    block_ready = true;
}

static inline uint64_t seed_of(uint64_t s, uint64_t q)
{
    if (!block_ready)
        block_init();
    return mix64(mix64(s) ^ q);
}

static inline uint64_t segment_const(uint64_t seed, uint64_t seg)
{
    return mix64(seed ^ (seg * 0xD6E8FEB86659FD93ull));
}

#define TEXT_KEEP 0x3F3F3F3F3F3F3F3Full
#define TEXT_BASE 0x2020202020202020ull

static inline uint64_t word_at(uint64_t seed, uint64_t k, bool text)
{
    uint64_t w = block[k & (BLOCK_WORDS - 1)] ^ segment_const(seed, k >> BLOCK_BITS);
    if (text) /* every byte in 0x20..0x5f: printable ASCII */
        w = (w & TEXT_KEEP) + TEXT_BASE;
    return w;
}

static inline uint8_t byte_at(uint64_t seed, uint64_t pos, bool text)
{
    uint64_t w = word_at(seed, pos >> 3, text);
    uint8_t b[8];
    memcpy(b, &w, 8);
    return b[pos & 7];
}

typedef uint64_t vec2 __attribute__((vector_size(16)));

static inline vec2 vec_load(const void *p)
{
    vec2 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vec2 vec_splat(uint64_t x)
{
    return (vec2){x, x};
}

/* Words [j, j + cnt) of a segment with constant c, text-folded, xor m64, into
 * dst (any alignment). */
static void segment_fill(uint8_t *dst, unsigned j, size_t cnt, uint64_t c, bool text,
                         uint64_t m64)
{
    const vec2 vc = vec_splat(c), vm = vec_splat(m64);
    const vec2 vk = vec_splat(TEXT_KEEP), vb = vec_splat(TEXT_BASE);
    size_t t = 0;
    if (text) {
        for (; t + 2 <= cnt; t += 2, dst += 16) {
            vec2 w = ((vec_load(block + j + t) ^ vc) & vk) + vb;
            w ^= vm;
            memcpy(dst, &w, 16);
        }
    } else {
        const vec2 vx = vc ^ vm;
        for (; t + 2 <= cnt; t += 2, dst += 16) {
            vec2 w = vec_load(block + j + t) ^ vx;
            memcpy(dst, &w, 16);
        }
    }
    for (; t < cnt; t++, dst += 8) {
        uint64_t w = block[j + t] ^ c;
        if (text)
            w = (w & TEXT_KEEP) + TEXT_BASE;
        w ^= m64;
        memcpy(dst, &w, 8);
    }
}

/* True when src holds words [j, j + cnt) of a segment with constant c. */
static bool segment_check(const uint8_t *src, unsigned j, size_t cnt, uint64_t c, bool text)
{
    const vec2 vc = vec_splat(c);
    const vec2 vk = vec_splat(TEXT_KEEP), vb = vec_splat(TEXT_BASE);
    vec2 diff = vec_splat(0);
    size_t t = 0;
    if (text) {
        for (; t + 2 <= cnt; t += 2, src += 16)
            diff |= vec_load(src) ^ (((vec_load(block + j + t) ^ vc) & vk) + vb);
    } else {
        for (; t + 2 <= cnt; t += 2, src += 16)
            diff |= vec_load(src) ^ vec_load(block + j + t) ^ vc;
    }
    uint64_t d = diff[0] | diff[1];
    for (; t < cnt; t++, src += 8) {
        uint64_t w = block[j + t] ^ c, got;
        if (text)
            w = (w & TEXT_KEEP) + TEXT_BASE;
        memcpy(&got, src, 8);
        d |= got ^ w;
    }
    return d == 0;
}

void pattern_fill(uint8_t *dst, uint64_t s, uint64_t q, uint64_t off, size_t n, bool text,
                  uint32_t mask)
{
    uint64_t seed = seed_of(s, q);
    uint8_t mk[4];
    memcpy(mk, &mask, 4);
    uint64_t m64;
    memcpy(&m64, mk, 4);
    memcpy((uint8_t *)&m64 + 4, mk, 4);
    size_t i = 0;
    while (i < n && ((off + i) & 7)) {
        dst[i] = byte_at(seed, off + i, text) ^ mk[(off + i) & 3];
        i++;
    }
    uint64_t k = (off + i) >> 3;
    while (i + 8 <= n) {
        unsigned j = (unsigned)(k & (BLOCK_WORDS - 1));
        size_t cnt = BLOCK_WORDS - j;
        if (cnt > (n - i) / 8)
            cnt = (n - i) / 8;
        segment_fill(dst + i, j, cnt, segment_const(seed, k >> BLOCK_BITS), text, m64);
        i += cnt * 8;
        k += cnt;
    }
    for (; i < n; i++)
        dst[i] = byte_at(seed, off + i, text) ^ mk[(off + i) & 3];
}

bool pattern_check(const uint8_t *src, uint64_t s, uint64_t q, uint64_t off, size_t n, bool text)
{
    uint64_t seed = seed_of(s, q);
    size_t i = 0;
    while (i < n && ((off + i) & 7)) {
        if (src[i] != byte_at(seed, off + i, text))
            return false;
        i++;
    }
    uint64_t k = (off + i) >> 3;
    while (i + 8 <= n) {
        unsigned j = (unsigned)(k & (BLOCK_WORDS - 1));
        size_t cnt = BLOCK_WORDS - j;
        if (cnt > (n - i) / 8)
            cnt = (n - i) / 8;
        if (!segment_check(src + i, j, cnt, segment_const(seed, k >> BLOCK_BITS), text))
            return false;
        i += cnt * 8;
        k += cnt;
    }
    for (; i < n; i++)
        if (src[i] != byte_at(seed, off + i, text))
            return false;
    return true;
}

/* -- send side ---------------------------------------------------------------- */

static unsigned frame_header(uint8_t *h, uint8_t op, uint64_t len, uint32_t mask)
{
    unsigned n = 0;
    h[n++] = 0x80 | op;
    if (len < 126) {
        h[n++] = 0x80 | (uint8_t)len;
    } else if (len < 65536) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(h + n, &mask, 4);
    return n + 4;
}

/* Appends a masked control frame; false when there is no room. */
static bool queue_control(struct stream *st, uint8_t op, const uint8_t *p, size_t len,
                          size_t reserve)
{
    if (st->ctl_len + 6 + len + reserve > sizeof st->ctl)
        return false;
    uint32_t mask = (uint32_t)rng_next();
    uint8_t mk[4];
    memcpy(mk, &mask, 4);
    uint8_t *h = st->ctl + st->ctl_len;
    unsigned hl = frame_header(h, op, len, mask);
    for (size_t i = 0; i < len; i++)
        h[hl + i] = p[i] ^ mk[i & 3];
    st->ctl_len += hl + (unsigned)len;
    run_stream_wants_tx(st);
    return true;
}

void stream_queue_close(struct stream *st, uint16_t code)
{
    if (st->close_queued || OPT->proto == PROTO_TCP)
        return;
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    st->queued = 0;
    if (queue_control(st, 0x8, p, 2, 0))
        st->close_queued = true;
    if (st->state == ST_OPEN)
        st->state = ST_CLOSING;
}

size_t stream_tx_avail(const struct stream *st, size_t cap)
{
    uint64_t n = st->ctl_len - st->ctl_off;
    if (st->tx_active)
        n += st->tx_hlen + OPT->size - st->tx_off;
    if (st->queued > 0 && !st->close_queued && n < cap) {
        uint8_t h[14];
        uint64_t per = (OPT->proto == PROTO_TCP ? 0 : frame_header(h, 0x2, OPT->size, 0)) +
                       OPT->size;
        uint64_t k = (cap - n + per - 1) / per; /* enough messages to fill cap */
        n += (k < st->queued ? k : st->queued) * per;
    }
    return n < cap ? (size_t)n : cap;
}

bool stream_tx_pending(const struct stream *st)
{
    return st->tx_active || st->ctl_off < st->ctl_len || (st->queued > 0 && !st->close_queued);
}

size_t stream_tx_fill(struct stream *st, uint8_t *buf, size_t cap)
{
    const bool raw = OPT->proto == PROTO_TCP;
    const uint64_t size = OPT->size;
    size_t n = 0;
    while (n < cap) {
        if (!st->tx_active) {
            if (st->ctl_off < st->ctl_len) {
                size_t k = st->ctl_len - st->ctl_off;
                if (k > cap - n)
                    k = cap - n;
                memcpy(buf + n, st->ctl + st->ctl_off, k);
                st->ctl_off += (unsigned)k;
                n += k;
                if (st->ctl_off == st->ctl_len) {
                    st->ctl_off = st->ctl_len = 0;
                    if (st->close_queued)
                        st->close_sent = true;
                }
                continue;
            }
            if (st->queued == 0 || st->close_queued)
                break;
            uint64_t q = st->send_seq++;
            st->queued--;
            st->sent_at[q % (uint64_t)OPT->inflight] = now_ns();
            if (raw) {
                st->tx_hlen = 0;
                st->tx_mask = 0;
            } else {
                st->tx_mask = (uint32_t)rng_next();
                st->tx_hlen = frame_header(st->tx_hdr, OPT->text ? 0x1 : 0x2, size, st->tx_mask);
            }
            st->tx_off = 0;
            st->tx_active = true;
        }
        if (st->tx_off < st->tx_hlen) {
            size_t k = st->tx_hlen - st->tx_off;
            if (k > cap - n)
                k = cap - n;
            memcpy(buf + n, st->tx_hdr + st->tx_off, k);
            st->tx_off += k;
            n += k;
        } else {
            uint64_t poff = st->tx_off - st->tx_hlen;
            uint64_t k = size - poff;
            if (k > cap - n)
                k = cap - n;
            pattern_fill(buf + n, st->key, st->send_seq - 1, poff, (size_t)k, OPT->text,
                         st->tx_mask);
            st->tx_off += k;
            n += (size_t)k;
        }
        if (st->tx_off == st->tx_hlen + size)
            st->tx_active = false;
    }
    return n;
}

/* -- receive side ------------------------------------------------------------- */

static void check_closed(struct stream *st)
{
    if (OPT->proto != PROTO_H2 && st->close_received && st->close_sent &&
        st->state != ST_DONE) {
        st->state = ST_DONE;
        run_on_stream_done(st);
    }
}

static void message_done(struct stream *st)
{
    if (!st->msg_bad && st->msg_off != OPT->size) {
        run_mismatch(st, "message %llu: echo has %llu bytes, sent %llu",
                     (unsigned long long)st->recv_seq, (unsigned long long)st->msg_off,
                     (unsigned long long)OPT->size);
        st->msg_bad = true;
    }
    if (st->recv_seq < st->send_seq)
        run_on_echo(st, !st->msg_bad);
    st->msg_op = 0;
    st->msg_off = 0;
    st->msg_bad = false;
}

static void message_start(struct stream *st, uint8_t op)
{
    st->msg_op = op;
    st->msg_off = 0;
    st->msg_bad = false;
    if (st->recv_seq >= st->send_seq) {
        run_mismatch(st, "a message arrived with none outstanding");
        st->msg_bad = true;
    } else if (op != (OPT->text ? 0x1 : 0x2)) {
        run_mismatch(st, "message %llu: sent as %s, echoed as %s",
                     (unsigned long long)st->recv_seq, OPT->text ? "text" : "binary",
                     op == 1 ? "text" : "binary");
        st->msg_bad = true;
    }
}

static void payload(struct stream *st, const uint8_t *p, size_t n)
{
    if (!st->msg_bad) {
        if (st->msg_off + n > OPT->size) {
            run_mismatch(st, "message %llu: echo longer than the %llu bytes sent",
                         (unsigned long long)st->recv_seq, (unsigned long long)OPT->size);
            st->msg_bad = true;
        } else if (!pattern_check(p, st->key, st->recv_seq, st->msg_off, n, OPT->text)) {
            run_mismatch(st, "message %llu: payload differs within bytes %llu..%llu",
                         (unsigned long long)st->recv_seq, (unsigned long long)st->msg_off,
                         (unsigned long long)(st->msg_off + n));
            st->msg_bad = true;
        }
    }
    st->msg_off += n;
}

static int frame_end(struct stream *st)
{
    uint8_t op = st->rx_op;
    if (op == 0x9) { /* ping: answer with a pong (dropped if the queue is full) */
        queue_control(st, 0xA, st->rx_ctl, st->rx_ctl_len, 8);
    } else if (op == 0xA) {
        /* unsolicited or answered pong: nothing to do */
    } else if (op == 0x8) {
        unsigned code = 1005;
        if (st->rx_ctl_len == 1) {
            run_error("stream %d: close frame with a 1-byte payload", st->id);
            return -1;
        }
        if (st->rx_ctl_len >= 2)
            code = (unsigned)st->rx_ctl[0] << 8 | st->rx_ctl[1];
        st->close_received = true;
        if (!st->close_queued) {
            run_error("stream %d: the server closed the WebSocket first (code %u)", st->id,
                      code);
            stream_queue_close(st, code == 1005 ? 1000 : (uint16_t)code);
        } else if (code != 1000) {
            run_error("stream %d: the server answered our close 1000 with %u", st->id, code);
        }
        check_closed(st);
    } else if (st->rx_fin) {
        message_done(st);
    }
    st->rx_in_payload = false;
    st->rx_hlen = 0;
    st->rx_ctl_len = 0;
    return 0;
}

static int header_done(struct stream *st)
{
    const uint8_t *h = st->rx_hdr;
    bool fin = h[0] & 0x80;
    uint8_t op = h[0] & 0x0F;
    if (h[0] & 0x70) {
        run_error("stream %d: frame with RSV bits set (0x%02x)", st->id, h[0]);
        return -1;
    }
    if (h[1] & 0x80) {
        run_error("stream %d: the server sent a masked frame (RFC 6455 section 5.1)", st->id);
        return -1;
    }
    uint64_t len = h[1] & 0x7F;
    if (len == 126)
        len = (uint64_t)h[2] << 8 | h[3];
    else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
    }
    if (st->close_received) {
        run_error("stream %d: frame after the server's close frame", st->id);
        return -1;
    }
    if (op >= 0x8) {
        if (op > 0xA || !fin || len > 125) {
            run_error("stream %d: bad control frame (opcode %u, fin %d, length %llu)", st->id,
                      op, fin, (unsigned long long)len);
            return -1;
        }
    } else if (op == 0) {
        if (st->msg_op == 0) {
            run_error("stream %d: continuation frame without a message", st->id);
            return -1;
        }
    } else if (op <= 2) {
        if (st->msg_op != 0) {
            run_error("stream %d: new message inside a fragmented one", st->id);
            return -1;
        }
        message_start(st, op);
    } else {
        run_error("stream %d: reserved opcode %u", st->id, op);
        return -1;
    }
    st->rx_op = op;
    st->rx_fin = fin;
    st->rx_left = len;
    st->rx_in_payload = true;
    st->rx_ctl_len = 0;
    return 0;
}

static void raw_rx(struct stream *st, const uint8_t *p, size_t len)
{
    while (len > 0) {
        if (st->recv_seq >= st->send_seq) {
            run_mismatch(st, "%zu bytes arrived with no message outstanding", len);
            return;
        }
        uint64_t k = OPT->size - st->msg_off;
        if (k > len)
            k = len;
        payload(st, p, (size_t)k);
        p += k;
        len -= (size_t)k;
        if (st->msg_off == OPT->size)
            message_done(st);
    }
}

static unsigned header_need(const struct stream *st)
{
    if (st->rx_hlen < 2)
        return 2;
    unsigned l7 = st->rx_hdr[1] & 0x7F;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (st->rx_hdr[1] & 0x80 ? 4 : 0);
}

int stream_rx(struct stream *st, const uint8_t *p, size_t len)
{
    if (OPT->proto == PROTO_TCP) {
        raw_rx(st, p, len);
        return 0;
    }
    for (;;) {
        if (!st->rx_in_payload) {
            unsigned need = header_need(st);
            if (st->rx_hlen < need) {
                if (len == 0)
                    break;
                size_t k = need - st->rx_hlen;
                if (k > len)
                    k = len;
                memcpy(st->rx_hdr + st->rx_hlen, p, k);
                st->rx_hlen += (unsigned)k;
                p += k;
                len -= k;
                continue; /* the length byte may ask for more header */
            }
            if (header_done(st) < 0)
                return -1;
            continue;
        }
        if (st->rx_left == 0) { /* also right after the header of an empty frame */
            if (frame_end(st) < 0)
                return -1;
            continue;
        }
        if (len == 0)
            break;
        size_t k = st->rx_left < len ? (size_t)st->rx_left : len;
        if (st->rx_op >= 0x8) {
            memcpy(st->rx_ctl + st->rx_ctl_len, p, k);
            st->rx_ctl_len += (unsigned)k;
        } else {
            payload(st, p, k);
        }
        st->rx_left -= k;
        p += k;
        len -= k;
    }
    return 0;
}

void stream_after_tx(struct stream *st)
{
    check_closed(st);
}

/* loadgen: options, the phases of a run, the event loop and the report. */
#include "loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_SECONDS 20.0
#define CONNECT_TIMEOUT_NS (10ull * 1000000000ull)
#define SHOWN_ERRORS 20

static struct options opt = {
    .proto = PROTO_H2,
    .host = "127.0.0.1",
    .path = "/",
    .connections = 1,
    .streams = 1,
    .inflight = 1,
    .size = 256,
    .duration = 5.0,
    .warmup = 1.0,
    .window = 16u << 20,
    .max_frame = 16384,
    .cpu = -1,
};
const struct options *OPT = &opt;

enum phase { P_CONNECT, P_RUN, P_HOLD, P_DRAIN, P_END };

static struct {
    enum phase phase;
    struct conn *conns;
    long nconns, started, conns_live;
    long streams_pending; /* neither open nor failed yet */
    long streams_open, streams_failed;
    uint64_t t_start, t_run, t_meas_start, t_meas_end, t_stop, t_drain_end, t_deadline;
    uint64_t t_hold_end;
    uint64_t messages, echoes, mismatches, errors, shown_errors, shown_mismatches;
    uint64_t unclean_ends;
    bool stop; /* --messages reached */
    struct hist hist;
    struct conn **dirty;
    long ndirty;
} run;

static volatile sig_atomic_t got_signal;
static bool stdin_eof;
static char authority_buf[512];

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t secs(double s)
{
    return (uint64_t)(s * 1e9);
}

/* -- hooks -------------------------------------------------------------------- */

void run_error(const char *fmt, ...)
{
    run.errors++;
    if (run.shown_errors++ >= SHOWN_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void run_mismatch(struct stream *st, const char *fmt, ...)
{
    run.mismatches++;
    if (run.shown_mismatches++ >= SHOWN_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: mismatch: connection %d stream %d: ", st->conn->index, st->id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool run_sending(void)
{
    return run.phase == P_RUN;
}

bool run_closing(void)
{
    return run.phase >= P_DRAIN;
}

static bool stream_idle(const struct stream *st)
{
    return st->recv_seq == st->send_seq && !st->tx_active;
}

/* An idle open stream at the end: close frame 1000 (raw TCP: just done). */
static void stream_finish(struct stream *st)
{
    if (opt.proto == PROTO_TCP) {
        st->state = ST_DONE;
        run_on_stream_done(st);
    } else {
        stream_queue_close(st, 1000);
    }
}

void conn_mark_dirty(struct conn *c)
{
    if (c->dirty || c->state == C_DONE || run.ndirty >= 2 * run.nconns)
        return;
    c->dirty = true;
    run.dirty[run.ndirty++] = c;
}

void run_stream_wants_tx(struct stream *st)
{
    if (opt.proto == PROTO_H2)
        h2_stream_resume(st);
    conn_mark_dirty(st->conn);
}

void run_on_echo(struct stream *st, bool ok)
{
    uint64_t now = now_ns();
    uint64_t q = st->recv_seq++;
    run.echoes++;
    if (ok && run.phase == P_RUN && now >= run.t_meas_start && now < run.t_meas_end &&
        !run.stop) {
        run.messages++;
        hist_add(&run.hist, now - st->sent_at[q % (uint64_t)opt.inflight]);
        if (opt.messages && run.messages >= opt.messages)
            run.stop = true;
    }
    if (st->state != ST_OPEN)
        return;
    if (run.phase == P_RUN && !run.stop) {
        st->queued++;
        run_stream_wants_tx(st);
    } else if (run_closing() && stream_idle(st) && st->queued == 0) {
        stream_finish(st);
    }
}

void run_on_stream_open(struct stream *st)
{
    (void)st;
    run.streams_open++;
    run.streams_pending--;
}

void run_on_stream_failed(struct stream *st, const char *why)
{
    if (st->state == ST_FAILED || st->state == ST_DONE)
        return;
    bool was_open = st->state == ST_OPEN || st->state == ST_CLOSING;
    st->state = ST_FAILED;
    st->conn->streams_live--;
    if (was_open) {
        run.streams_open--;
    } else {
        run.streams_pending--;
    }
    run.streams_failed++;
    if (why && run.shown_errors++ < SHOWN_ERRORS)
        fprintf(stderr, "loadgen: connection %d stream %d failed: %s\n", st->conn->index, st->id,
                why);
    conn_mark_dirty(st->conn);
}

void run_on_unclean_end(struct stream *st)
{
    if (run.unclean_ends++ == 0)
        fprintf(stderr,
                "loadgen: note: connection %d: the server closed the connection after the close "
                "frames but before END_STREAM (counted in unclean_ends, not as an error)\n",
                st->conn->index);
}

void run_on_stream_done(struct stream *st)
{
    st->conn->streams_live--;
    conn_mark_dirty(st->conn);
}

/* -- options -------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "usage: loadgen --port P [options]\n"
        "  --proto h2|h1|tcp     HTTP/2 extended CONNECT (default), HTTP/1.1 Upgrade, raw TCP echo\n"
        "  --host H              server address (default 127.0.0.1)\n"
        "  --port P              server port (required)\n"
        "  --path /p             request path (default /)\n"
        "  --authority A         :authority / Host (default host:port)\n"
        "  --tls                 TLS with ALPN (no certificate check unless --cafile)\n"
        "  --cafile F            verify the server certificate against F (implies --tls)\n"
        "  -c, --connections N   connections (default 1)\n"
        "  -s, --streams S       WebSocket streams per connection (h2 only; default 1)\n"
        "  -w, --inflight W      messages in flight per stream (default 1)\n"
        "  -m, --size BYTES      message size, suffixes K and M (KiB, MiB) (default 256)\n"
        "  --binary | --text     message type (default binary)\n"
        "  -d, --duration SEC    measured duration (default 5)\n"
        "  --warmup SEC          warm-up before measuring (default 1)\n"
        "  --messages N          stop after N measured messages\n"
        "  --window BYTES        HTTP/2 stream and connection receive window (default 16M)\n"
        "  --max-frame BYTES     HTTP/2 SETTINGS_MAX_FRAME_SIZE we advertise (default 16384)\n"
        "  --cpu N               pin to CPU core N\n"
        "  --hold                open everything, print {\"ready\":true,...}, stay idle\n"
        "  --connect-rate R      open at most R connections per second (0: unlimited)\n"
        "  --json                one JSON line instead of a table\n"
        "  -v, --verbose         progress notes on stderr\n",
        f);
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    exit(2);
}

static uint64_t parse_size(const char *name, const char *s)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        bad("%s: not a size: %s", name, s);
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024 * 1024 * 1024, end++;
    if (*end == 'i' && end[1] == 'B' && mul > 1)
        end += 2;
    if (errno || *end || end == s || v > UINT64_MAX / mul)
        bad("%s: not a size: %s", name, s);
    return v * mul;
}

static long parse_long(const char *name, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        bad("%s: expected an integer in %ld..%ld, got %s", name, lo, hi, s);
    return v;
}

static double parse_double(const char *name, const char *s, double lo)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < lo)
        bad("%s: expected a number >= %g, got %s", name, lo, s);
    return v;
}

enum {
    OPT_PROTO = 256, OPT_HOST, OPT_PORT, OPT_PATH, OPT_AUTH, OPT_TLS, OPT_CAFILE, OPT_BINARY, OPT_TEXT, OPT_WARMUP,
    OPT_MESSAGES, OPT_WINDOW, OPT_MAXFRAME, OPT_CPU, OPT_HOLD, OPT_RATE, OPT_JSON, OPT_HELP
};

static void parse_options(int argc, char **argv)
{
    static const struct option longs[] = {
        {"proto", required_argument, 0, OPT_PROTO},
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"path", required_argument, 0, OPT_PATH},
        {"authority", required_argument, 0, OPT_AUTH},
        {"tls", no_argument, 0, OPT_TLS},
        {"cafile", required_argument, 0, OPT_CAFILE},
        {"connections", required_argument, 0, 'c'},
        {"streams", required_argument, 0, 's'},
        {"inflight", required_argument, 0, 'w'},
        {"size", required_argument, 0, 'm'},
        {"binary", no_argument, 0, OPT_BINARY},
        {"text", no_argument, 0, OPT_TEXT},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"messages", required_argument, 0, OPT_MESSAGES},
        {"window", required_argument, 0, OPT_WINDOW},
        {"max-frame", required_argument, 0, OPT_MAXFRAME},
        {"cpu", required_argument, 0, OPT_CPU},
        {"hold", no_argument, 0, OPT_HOLD},
        {"connect-rate", required_argument, 0, OPT_RATE},
        {"json", no_argument, 0, OPT_JSON},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, ":c:s:w:m:d:vh", longs, NULL);
        if (o == -1)
            break;
        switch (o) {
        case OPT_PROTO:
            if (strcmp(optarg, "h2") == 0)
                opt.proto = PROTO_H2;
            else if (strcmp(optarg, "h1") == 0)
                opt.proto = PROTO_H1;
            else if (strcmp(optarg, "tcp") == 0)
                opt.proto = PROTO_TCP;
            else
                bad("--proto: expected h2, h1 or tcp, got %s", optarg);
            break;
        case OPT_HOST: opt.host = optarg; break;
        case OPT_PORT:
            parse_long("--port", optarg, 1, 65535);
            opt.port = optarg;
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
                bad("--path: must start with / and hold no spaces: %s", optarg);
            opt.path = optarg;
            break;
        case OPT_AUTH:
            if (!*optarg || strpbrk(optarg, " \r\n"))
                bad("--authority: invalid: %s", optarg);
            opt.authority = optarg;
            break;
        case OPT_TLS: opt.tls = true; break;
        case OPT_CAFILE: opt.cafile = optarg; opt.tls = true; break;
        case 'c': opt.connections = parse_long("--connections", optarg, 1, 1000000); break;
        case 's': opt.streams = parse_long("--streams", optarg, 1, 1000000); break;
        case 'w': opt.inflight = parse_long("--inflight", optarg, 1, 1000000); break;
        case 'm':
            opt.size = parse_size("--size", optarg);
            if (opt.size > (1ull << 31))
                bad("--size: at most 2G");
            break;
        case OPT_BINARY: opt.text = false; break;
        case OPT_TEXT: opt.text = true; break;
        case 'd':
            opt.duration = parse_double("--duration", optarg, 0.0);
            if (opt.duration <= 0)
                bad("--duration: must be > 0");
            opt.duration_set = true;
            break;
        case OPT_WARMUP: opt.warmup = parse_double("--warmup", optarg, 0.0); break;
        case OPT_MESSAGES:
            opt.messages = parse_size("--messages", optarg);
            if (opt.messages == 0)
                bad("--messages: must be > 0");
            break;
        case OPT_WINDOW: {
            uint64_t w = parse_size("--window", optarg);
            if (w < 1 || w > 0x7FFFFFFF)
                bad("--window: expected 1..2147483647 bytes, got %s", optarg);
            opt.window = (uint32_t)w;
            break;
        }
        case OPT_MAXFRAME: {
            uint64_t f = parse_size("--max-frame", optarg);
            if (f < 16384 || f > 16777215)
                bad("--max-frame: expected 16384..16777215 (RFC 9113 section 6.5.2), got %s",
                    optarg);
            opt.max_frame = (uint32_t)f;
            break;
        }
        case OPT_CPU: opt.cpu = (int)parse_long("--cpu", optarg, 0, CPU_SETSIZE - 1); break;
        case OPT_HOLD: opt.hold = true; break;
        case OPT_RATE: opt.connect_rate = parse_double("--connect-rate", optarg, 0.0); break;
        case OPT_JSON: opt.json = true; break;
        case 'v': opt.verbose = true; break;
        case 'h':
        case OPT_HELP: usage(stdout); exit(0);
        case ':': bad("option %s needs a value", argv[optind - 1]);
        default: bad("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bad("unexpected argument: %s", argv[optind]);
    if (!opt.port)
        bad("--port is required");
    if (opt.proto != PROTO_H2 && opt.streams != 1)
        bad("--streams: only HTTP/2 carries several streams per connection (h1/tcp: 1)");
    if (opt.proto == PROTO_TCP && opt.size == 0)
        bad("--size: raw TCP needs at least 1 byte per message");
    if (opt.messages && !opt.duration_set)
        opt.duration = 60.0; /* --messages alone: a 60 s cap */
    if (!opt.authority) {
        bool v6 = strchr(opt.host, ':') != NULL;
        snprintf(authority_buf, sizeof authority_buf, v6 ? "[%s]:%s" : "%s:%s", opt.host,
                 opt.port);
        opt.authority = authority_buf;
    }
}

/* -- setup -------------------------------------------------------------------------- */

static int raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)opt.connections + 32;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "loadgen: %ld connections need %llu file descriptors, RLIMIT_NOFILE allows "
                "%llu (raise the hard limit: ulimit -Hn)\n",
                opt.connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    got_signal = 1;
}

static void setup_conns(void)
{
    run.nconns = opt.connections;
    run.conns = calloc((size_t)run.nconns, sizeof *run.conns);
    run.dirty = calloc(2 * (size_t)run.nconns, sizeof *run.dirty);
    if (!run.conns || !run.dirty) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    uint64_t key = rng_next();
    for (long i = 0; i < run.nconns; i++) {
        struct conn *c = &run.conns[i];
        c->fd = -1;
        c->index = (int)i;
        c->nstreams = opt.streams;
        c->streams_live = opt.streams;
        c->streams = calloc((size_t)opt.streams, sizeof *c->streams);
        if (!c->streams) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
        for (long j = 0; j < opt.streams; j++) {
            struct stream *st = &c->streams[j];
            st->conn = c;
            st->key = key++;
            if (!opt.hold) {
                st->sent_at = calloc((size_t)opt.inflight, sizeof *st->sent_at);
                if (!st->sent_at) {
                    fprintf(stderr, "loadgen: out of memory\n");
                    exit(1);
                }
            }
        }
    }
    run.conns_live = run.nconns;
    run.streams_pending = run.nconns * opt.streams;
}

static void free_conns(void)
{
    for (long i = 0; i < run.nconns; i++) {
        struct conn *c = &run.conns[i];
        conn_close(c);
        for (long j = 0; j < c->nstreams; j++)
            free(c->streams[j].sent_at);
        free(c->streams);
    }
    free(run.conns);
    free(run.dirty);
}

/* -- phases ------------------------------------------------------------------------ */

static void start_running(uint64_t now)
{
    if (opt.hold) {
        run.phase = P_HOLD;
        run.t_hold_end = now + secs(opt.duration);
        long open_conns = 0;
        for (long i = 0; i < run.nconns; i++)
            open_conns += run.conns[i].state != C_DONE;
        printf("{\"ready\":true,\"streams\":%ld,\"connections\":%ld}\n", run.streams_open,
               open_conns);
        fflush(stdout);
        return;
    }
    run.phase = P_RUN;
    run.t_run = now;
    run.t_meas_start = now + secs(opt.warmup);
    run.t_meas_end = run.t_meas_start + secs(opt.duration);
    for (long i = 0; i < run.nconns; i++) {
        struct conn *c = &run.conns[i];
        for (long j = 0; j < c->nstreams; j++) {
            struct stream *st = &c->streams[j];
            if (st->state == ST_OPEN) {
                st->queued = (uint64_t)opt.inflight;
                run_stream_wants_tx(st);
            }
        }
    }
}

static void start_draining(uint64_t now)
{
    if (run.phase == P_CONNECT) { /* interrupted: drop what is not up yet */
        long dropped = 0;
        for (long i = 0; i < run.nconns; i++) {
            struct conn *c = &run.conns[i];
            if (c->state != C_DONE && (c->state != C_OPEN || c->requested > 0)) {
                c->failed = true; /* no message per stream */
                conn_close(c);
                dropped++;
            }
        }
        if (dropped)
            fprintf(stderr, "loadgen: interrupted: %ld connection(s) not fully up dropped\n",
                    dropped);
    }
    if (run.phase == P_RUN) {
        run.t_stop = now < run.t_meas_end ? now : run.t_meas_end;
        if (run.t_stop < run.t_meas_start)
            run.t_stop = run.t_meas_start;
    }
    run.phase = P_DRAIN;
    run.t_drain_end = now + secs(DRAIN_SECONDS);
    for (long i = 0; i < run.nconns; i++) {
        struct conn *c = &run.conns[i];
        for (long j = 0; j < c->nstreams; j++) {
            struct stream *st = &c->streams[j];
            st->queued = 0;
            if (st->state == ST_OPEN && stream_idle(st))
                stream_finish(st);
        }
    }
}

static void start_connections(uint64_t now)
{
    long allowed = run.nconns;
    if (opt.connect_rate > 0) {
        double t = (double)(now - run.t_start) / 1e9;
        double a = 1.0 + floor(opt.connect_rate * t);
        if (a < (double)allowed)
            allowed = (long)a;
    }
    while (run.started < allowed)
        conn_start(&run.conns[run.started++]);
}

static void check_timeouts(uint64_t now)
{
    for (long i = 0; i < run.started; i++) {
        struct conn *c = &run.conns[i];
        if (c->state == C_DONE)
            continue;
        bool waiting = c->state != C_OPEN || c->requested > 0;
        if (waiting && now > c->started_ns + CONNECT_TIMEOUT_NS)
            conn_fail(c, "not established within 10 s (%s, %ld WebSocket(s) unanswered)",
                      c->state == C_CONNECTING ? "TCP connect"
                      : c->state == C_TLS      ? "TLS handshake"
                      : c->state == C_HANDSHAKE
                          ? (opt.proto == PROTO_H2 ? "no SETTINGS from the server"
                                                   : "no answer to the Upgrade")
                          : "extended CONNECT unanswered",
                      c->requested);
    }
}

static void flush_dirty(void)
{
    /* a flush may mark others dirty: loop over a growing list */
    for (long i = 0; i < run.ndirty; i++) {
        struct conn *c = run.dirty[i];
        c->dirty = false;
        conn_flush(c);
    }
    run.ndirty = 0;
}

static long count_live_conns(void)
{
    long n = 0;
    for (long i = 0; i < run.nconns; i++)
        n += run.conns[i].state != C_DONE;
    return n;
}

/* -- report ----------------------------------------------------------------------- */

static const char *proto_name(void)
{
    return opt.proto == PROTO_H2 ? "h2" : opt.proto == PROTO_H1 ? "h1" : "tcp";
}

static void report(double measured)
{
    double mps = measured > 0 ? (double)run.messages / measured : 0.0;
    double bps = mps * (double)opt.size;
    const struct hist *h = &run.hist;
    double p50 = hist_quantile(h, 0.50) / 1e3, p99 = hist_quantile(h, 0.99) / 1e3;
    double p999 = hist_quantile(h, 0.999) / 1e3, mx = (double)h->max / 1e3;
    double mean = h->count ? h->sum / (double)h->count / 1e3 : 0.0;
    if (opt.json) {
        printf("{\"proto\":\"%s\",\"tls\":%s,\"connections\":%ld,\"streams\":%ld,"
               "\"inflight\":%ld,\"size\":%llu,\"duration\":%.6f,\"messages\":%llu,"
               "\"msgs_per_s\":%.3f,\"bytes_per_s\":%.1f,"
               "\"rtt_us\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},"
               "\"mismatches\":%llu,\"errors\":%llu,\"streams_open\":%ld,\"streams_failed\":%ld,"
               "\"text\":%s,\"warmup\":%.3f,\"window\":%u,\"max_frame\":%u,\"echoes\":%llu,"
               "\"hold\":%s,\"unclean_ends\":%llu}\n",
               proto_name(), opt.tls ? "true" : "false", opt.connections, opt.streams,
               opt.inflight, (unsigned long long)opt.size, measured,
               (unsigned long long)run.messages, mps, bps, p50, p99, p999, mx, mean,
               (unsigned long long)run.mismatches, (unsigned long long)run.errors,
               run.streams_open, run.streams_failed, opt.text ? "true" : "false", opt.warmup,
               opt.window, opt.max_frame, (unsigned long long)run.echoes,
               opt.hold ? "true" : "false", (unsigned long long)run.unclean_ends);
    } else {
        printf("proto %s%s, %ld connection(s) x %ld stream(s), %ld in flight, %llu-byte %s "
               "messages\n",
               proto_name(), opt.tls ? "+tls" : "", opt.connections, opt.streams, opt.inflight,
               (unsigned long long)opt.size, opt.text ? "text" : "binary");
        printf("  duration      %10.3f s\n", measured);
        printf("  messages      %10llu\n", (unsigned long long)run.messages);
        printf("  msgs/s        %14.1f\n", mps);
        printf("  MB/s          %14.3f  (payload echoed, one direction)\n", bps / 1e6);
        printf("  rtt us        p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", p50, p99,
               p999, mx, mean);
        printf("  streams       %ld open, %ld failed\n", run.streams_open, run.streams_failed);
        printf("  mismatches    %llu\n  errors        %llu\n", (unsigned long long)run.mismatches,
               (unsigned long long)run.errors);
    }
    fflush(stdout);
}

/* -- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            fprintf(stderr, "loadgen: --cpu %d: %s\n", opt.cpu, strerror(errno));
            return 2;
        }
    }
    if (raise_nofile() < 0)
        return 1;
    if (net_resolve(&opt) < 0)
        return 1;
    if (tls_init(&opt) < 0)
        return 1;
    rng_seed();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("loadgen: epoll_create1");
        return 1;
    }
    net_set_epoll_fd(ep);
    static int stdin_tag;
    if (opt.hold) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stdin_tag};
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev); /* fails (ignored) for files and /dev/null */
    }
    setup_conns();
    run.t_start = now_ns();
    double connect_budget = opt.connect_rate > 0 ? (double)opt.connections / opt.connect_rate : 0;
    run.t_deadline = run.t_start + secs(opt.duration + opt.warmup + 30.0 + connect_budget);
    run.phase = P_CONNECT;

    struct epoll_event evs[512];
    uint64_t last_scan = 0;
    bool deadline_hit = false;
    while (run.phase != P_END) {
        uint64_t now = now_ns();
        if (now >= run.t_deadline) {
            deadline_hit = true;
            break;
        }
        if (run.phase == P_CONNECT) {
            start_connections(now);
            if (now - last_scan > 100000000ull) {
                check_timeouts(now);
                last_scan = now;
            }
            if (run.started == run.nconns && run.streams_pending == 0) {
                if (opt.verbose)
                    fprintf(stderr, "loadgen: %ld streams open, %ld failed in %.3f s\n",
                            run.streams_open, run.streams_failed,
                            (double)(now - run.t_start) / 1e9);
                if (run.streams_open == 0)
                    start_draining(now);
                else
                    start_running(now);
            } else if (got_signal) {
                start_draining(now);
            }
        } else if (run.phase == P_RUN) {
            if (now >= run.t_meas_end || run.stop || got_signal)
                start_draining(now);
        } else if (run.phase == P_HOLD) {
            if (now >= run.t_hold_end || stdin_eof || got_signal)
                start_draining(now);
        } else if (run.phase == P_DRAIN) {
            if (count_live_conns() == 0) {
                run.phase = P_END;
                break;
            }
            if (now >= run.t_drain_end) {
                for (long i = 0; i < run.nconns; i++)
                    if (run.conns[i].state != C_DONE)
                        conn_fail(&run.conns[i], "did not close within %.0f s", DRAIN_SECONDS);
                run.phase = P_END;
                break;
            }
        }
        flush_dirty();
        int timeout = run.phase == P_HOLD ? 100 : 10;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("loadgen: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &stdin_tag) {
                char b[4096];
                ssize_t r = read(0, b, sizeof b);
                if (r <= 0) {
                    stdin_eof = true;
                    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                }
                continue;
            }
            conn_on_event(evs[i].data.ptr, evs[i].events);
        }
    }
    if (deadline_hit) {
        fprintf(stderr, "loadgen: error: global deadline (duration + warmup + 30 s) passed in "
                        "phase %d; giving up\n",
                run.phase);
        run.errors++;
        if (run.phase == P_RUN)
            run.t_stop = run.t_meas_end;
    }
    double measured = 0.0;
    if (run.t_stop > run.t_meas_start)
        measured = (double)(run.t_stop - run.t_meas_start) / 1e9;
    free_conns();
    close(ep);
    tls_free();
    h2_global_free();
    report(measured);
    if (run.mismatches || run.streams_failed || run.errors)
        return 1;
    if (!opt.hold && run.messages == 0) {
        fprintf(stderr, "loadgen: error: no message was echoed in the measured time\n");
        return 1;
    }
    return 0;
}

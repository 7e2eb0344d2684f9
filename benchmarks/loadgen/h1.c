/* HTTP/1.1 Upgrade handshakes (RFC 6455 section 4). */
#include "loadgen.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD 16384
static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void h1_conn_init(struct conn *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng_next();
        memcpy(raw + i, &r, 8);
    }
    EVP_EncodeBlock((unsigned char *)c->h1_key, raw, 16);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: h2ws-loadgen\r\n\r\n",
                     OPT->path, OPT->authority, c->h1_key);
    buf_append(&c->out, req, (size_t)n);
    c->streams[0].state = ST_REQUESTED;
    c->requested = 1;
}

static void expected_accept(const char *key, char out[32])
{
    char in[64];
    int n = snprintf(in, sizeof in, "%s%s", key, GUID);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)in, (size_t)n, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

static void fail(struct conn *c, const char *why)
{
    c->requested = 0;
    run_on_stream_failed(&c->streams[0], why);
    conn_close(c);
}

int h1_conn_recv(struct conn *c, const uint8_t *data, size_t len)
{
    buf_append(&c->h1_in, data, len);
    char *head = (char *)c->h1_in.p;
    size_t have = c->h1_in.len;
    char *end = memmem(head, have, "\r\n\r\n", 4);
    if (!end) {
        if (have > MAX_HEAD) {
            fail(c, "HTTP/1.1 response head larger than 16 KiB");
            return -1;
        }
        return 0;
    }
    *end = '\0';
    size_t head_len = (size_t)(end - head) + 4;
    int status = 0;
    if (sscanf(head, "HTTP/1.%*[01] %d", &status) != 1) {
        fail(c, "not an HTTP/1.1 response");
        return -1;
    }
    if (status != 101) {
        char why[64];
        snprintf(why, sizeof why, "Upgrade answered with status %d", status);
        fail(c, why);
        return -1;
    }
    char want[32];
    expected_accept(c->h1_key, want);
    bool accept_ok = false;
    for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "sec-websocket-accept:", 21) == 0) {
            const char *v = line + 21;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strcspn(v, " \t\r\n");
            accept_ok = vl == strlen(want) && memcmp(v, want, vl) == 0;
        }
    }
    if (!accept_ok) {
        fail(c, "101 without a valid Sec-WebSocket-Accept");
        return -1;
    }
    c->requested = 0;
    c->state = C_OPEN;
    struct stream *st = &c->streams[0];
    st->state = ST_OPEN;
    run_on_stream_open(st);
    size_t rest = have - head_len;
    if (rest > 0 && stream_rx(st, c->h1_in.p + head_len, rest) < 0) {
        buf_free(&c->h1_in);
        conn_fail(c, "WebSocket protocol error");
        return -1;
    }
    buf_free(&c->h1_in);
    return 0;
}

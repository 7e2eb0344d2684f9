/* A bare TCP echo server on epoll: the floor under every WebSocket server.
 *
 *   build/tcp_echo --port 8080 [--host 127.0.0.1]
 *
 * One thread, level-triggered epoll, non-blocking sockets with TCP_NODELAY.
 * Whatever arrives is written back; bytes the kernel does not take at once wait
 * in a per-connection buffer, and reading from that connection stops until they
 * are gone (so memory stays bounded). No framing: it measures the cost of the
 * loopback round trip and the system calls. Exits 0 on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    size_t pending; /* bytes in buf not written yet, from off */
    size_t off;
    unsigned char buf[BUF_SIZE];
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: tcp_echo --port PORT [--host ADDR]\n");
    return 2;
}

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes what is pending; returns -1 when the connection failed. */
static int conn_flush(struct conn *c)
{
    while (c->pending > 0) {
        ssize_t n = send(c->fd, c->buf + c->off, c->pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->off += (size_t)n;
        c->pending -= (size_t)n;
    }
    c->off = 0;
    return 0;
}

static int conn_watch(int ep, struct conn *c, int op)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = c->pending > 0 ? EPOLLOUT : EPOLLIN;
    ev.data.ptr = c;
    return epoll_ctl(ep, op, c->fd, &ev);
}

/* Handles readiness on one connection; returns -1 when it must be closed. */
static int conn_ready(int ep, struct conn *c, unsigned events)
{
    if (c->pending > 0) {
        if (conn_flush(c) < 0)
            return -1;
        if (c->pending == 0)
            return conn_watch(ep, c, EPOLL_CTL_MOD);
        return 0;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return 0;
    ssize_t n = recv(c->fd, c->buf, BUF_SIZE, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    c->off = 0;
    c->pending = (size_t)n;
    if (conn_flush(c) < 0)
        return -1;
    if (c->pending > 0)
        return conn_watch(ep, c, EPOLL_CTL_MOD);
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = strtol(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (port < 0 || port > 65535)
        return usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "tcp_echo: bad IPv4 address %s\n", host);
        return 2;
    }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    struct epoll_event lev;
    memset(&lev, 0, sizeof lev);
    lev.events = EPOLLIN;
    lev.data.ptr = NULL; /* NULL marks the listening socket */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 500);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                for (int k = 0; k < 1024; k++) { /* bounded: at most 1024 accepts per wakeup */
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->pending = 0;
                    nc->off = 0;
                    if (conn_watch(ep, nc, EPOLL_CTL_ADD) < 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            if (conn_ready(ep, c, events[i].events) < 0)
                conn_close(ep, c);
        }
    }
    close(ep);
    close(lfd);
    return 0;
}

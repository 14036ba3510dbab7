/*
 * dtlsload: a DTLS 1.2 handshake load generator for bench/workers.py (a test tool, not part
 * of dtlsgate; it uses OpenSSL for the client side).
 *
 * K clients run at once from one thread on one epoll loop. Each does a full handshake from a
 * fresh non-blocking UDP socket (so a fresh source port, and the server's SO_REUSEPORT group
 * spreads the clients), sends close_notify so the server forgets it, frees everything and
 * starts again. OpenSSL answers the HelloVerifyRequest itself and retransmits on its own
 * timer (DTLSv1_handle_timeout); a handshake that is not done after --give-up seconds is
 * abandoned and restarted.
 *
 * After --warmup seconds it prints "counting" (the caller samples the server's CPU time
 * then), counts the handshakes completed for --seconds, prints one line
 *   done handshakes=N seconds=S user=U sys=S ports=P retries=R failures=F
 * (user/sys: this process's own CPU seconds in the counted window, from getrusage; ports:
 * distinct source ports used in it) and exits.
 *
 * Usage:
 *   dtlsload --port P [--host 127.0.0.1] [--clients 16] [--warmup 2] [--seconds 10]
 *            [--give-up 5] [--sockets 16K] [--psk IDENTITY:HEX] [--cipher LIST]
 * Without --psk: ECDHE with certificates (the server's certificate is not verified).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 4096
#define MAX_PSK 64
#define CERT_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define PSK_CIPHERS "PSK-AES128-CCM8"

struct client {
    int sock; /* index into the socket pool, -1 before the first handshake */
    SSL *ssl; /* kept from one handshake to the next (SSL_clear) */
    double started;
};

/* Sockets are made once and lent round-robin (first in, first out), so consecutive
 * handshakes come from different source ports without a socket(), bind() and close() each;
 * a port comes back only after the rest of the pool. */
struct pool_socket {
    int fd;
    unsigned short port;
    struct client *owner; /* NULL while free: what arrives then is late, and dropped */
};

static struct sockaddr_in server_addr;
static char psk_identity[256];
static unsigned char psk_key[MAX_PSK];
static size_t psk_len;
static unsigned char port_seen[65536];
static struct pool_socket *sockets;
static int *free_ring, ring_head, ring_count, pool_size;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_of(const struct timeval *tv) {
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "dtlsload: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static unsigned int psk_callback(SSL *ssl, const char *hint, char *identity,
                                 unsigned int max_identity, unsigned char *psk,
                                 unsigned int max_psk) {
    (void)ssl;
    (void)hint;
    if (strlen(psk_identity) + 1 > max_identity || psk_len > max_psk)
        return 0;
    strcpy(identity, psk_identity);
    memcpy(psk, psk_key, psk_len);
    return (unsigned int)psk_len;
}

static int parse_psk(const char *text) {
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof psk_identity)
        return -1;
    memcpy(psk_identity, text, (size_t)(colon - text));
    psk_identity[colon - text] = 0;
    const char *hex = colon + 1;
    size_t digits = strlen(hex);
    if (digits == 0 || digits % 2 || digits / 2 > MAX_PSK)
        return -1;
    for (size_t i = 0; i < digits / 2; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        psk_key[i] = (unsigned char)byte;
    }
    psk_len = digits / 2;
    return 0;
}

/* One step of the handshake: 1 when it completed, 0 when it waits, -1 when it failed. */
static int step(struct client *c) {
    int ret = SSL_do_handshake(c->ssl);
    if (ret == 1)
        return 1;
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return 0;
    static int reported;
    if (!reported) { /* the first failure's reason, once */
        reported = 1;
        fprintf(stderr, "dtlsload: a handshake failed (SSL_get_error %d, errno %d)\n", err, errno);
        ERR_print_errors_fp(stderr);
    }
    ERR_clear_error();
    return -1;
}

static void open_pool(int epfd) {
    sockets = calloc((size_t)pool_size, sizeof *sockets);
    free_ring = calloc((size_t)pool_size, sizeof *free_ring);
    if (!sockets || !free_ring)
        die("calloc");
    for (int i = 0; i < pool_size; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
            die("socket (raise ulimit -n or lower --sockets)");
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = server_addr.sin_addr};
        socklen_t len = sizeof local;
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0 ||
            connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 ||
            getsockname(fd, (struct sockaddr *)&local, &len) < 0)
            die("bind/connect");
        sockets[i] = (struct pool_socket){fd, ntohs(local.sin_port), NULL};
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
        free_ring[i] = i;
    }
    ring_head = 0;
    ring_count = pool_size;
}

/* A new handshake for ``c``: the next free socket, the same SSL object cleared. */
static void start(SSL_CTX *ctx, struct client *c, int counting) {
    if (c->sock >= 0) { /* give the last socket back */
        sockets[c->sock].owner = NULL;
        free_ring[(ring_head + ring_count++) % pool_size] = c->sock;
    }
    c->sock = free_ring[ring_head];
    ring_head = (ring_head + 1) % pool_size;
    ring_count--;
    struct pool_socket *s = &sockets[c->sock];
    s->owner = c;
    if (counting)
        port_seen[s->port] = 1;
    if (c->ssl) {
        /* No resumption: the next handshake is a full one, as a new client's. */
        if (!SSL_clear(c->ssl) || !SSL_set_session(c->ssl, NULL))
            die("SSL_clear");
    } else if (!(c->ssl = SSL_new(ctx))) {
        die("SSL_new");
    }
    BIO *bio = BIO_new_dgram(s->fd, BIO_NOCLOSE);
    if (!bio)
        die("BIO_new_dgram");
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &server_addr);
    SSL_set_bio(c->ssl, bio, bio); /* frees the last handshake's BIO */
    SSL_set_connect_state(c->ssl);
    c->started = now();
    if (step(c) < 0)
        die("the first ClientHello");
}

/* A datagram for a socket that no client holds (a late retransmission or close_notify). */
static void drop_late(struct pool_socket *s) {
    char buf[2048];
    while (recv(s->fd, buf, sizeof buf, 0) >= 0 || errno == EINTR)
        ;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *cipher = NULL;
    int port = 0, clients = 16;
    pool_size = 0;
    double warmup = 2.0, seconds = 10.0, give_up = 5.0;
    static const struct option options[] = {
        {"host", required_argument, 0, 'h'},    {"port", required_argument, 0, 'p'},
        {"clients", required_argument, 0, 'c'}, {"warmup", required_argument, 0, 'w'},
        {"seconds", required_argument, 0, 's'}, {"give-up", required_argument, 0, 'g'},
        {"psk", required_argument, 0, 'k'},     {"cipher", required_argument, 0, 'x'},
        {"sockets", required_argument, 0, 'n'}, {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': clients = atoi(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'g': give_up = atof(optarg); break;
        case 'k':
            if (parse_psk(optarg) < 0)
                die("--psk wants IDENTITY:HEX");
            break;
        case 'x': cipher = optarg; break;
        case 'n': pool_size = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!pool_size)
        pool_size = clients * 16 < 256 ? 256 : clients * 16;
    if (port <= 0 || port > 65535 || clients < 1 || clients > MAX_CLIENTS || seconds <= 0 ||
        pool_size <= clients)
        die("usage: dtlsload --port P [--clients K] [--sockets N > K] [--warmup W] [--seconds S]"
            " [--psk ID:HEX] [--cipher LIST]");
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1)
        die("--host wants an IPv4 address");

    SSL_CTX *ctx = SSL_CTX_new(DTLS_client_method());
    if (!ctx)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (psk_len)
        SSL_CTX_set_psk_client_callback(ctx, psk_callback);
    if (!SSL_CTX_set_cipher_list(ctx, cipher ? cipher : psk_len ? PSK_CIPHERS : CERT_CIPHERS))
        die("--cipher");

    int epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    open_pool(epfd);
    struct client *pool = calloc((size_t)clients, sizeof *pool);
    if (!pool)
        die("calloc");
    for (int i = 0; i < clients; i++) {
        pool[i].sock = -1;
        start(ctx, &pool[i], 0);
    }

    double begin = now(), counted_from = begin + warmup, end = counted_from + seconds;
    int counting = 0;
    long handshakes = 0, retries = 0, failures = 0;
    struct rusage ru0 = {0};
    struct epoll_event events[256];
    double last_sweep = begin;
    for (;;) {
        double t = now();
        if (!counting && t >= counted_from) {
            counting = 1;
            getrusage(RUSAGE_SELF, &ru0);
            handshakes = retries = failures = 0;
            printf("counting\n");
            fflush(stdout);
        }
        if (t >= end)
            break;
        int n = epoll_wait(epfd, events, 256, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct pool_socket *s = &sockets[events[i].data.u32];
            struct client *c = s->owner;
            if (!c) {
                drop_late(s);
                continue;
            }
            int r = step(c);
            if (r == 1) {
                SSL_shutdown(c->ssl); /* close_notify: the server forgets the association */
                handshakes++;
                start(ctx, c, counting);
            } else if (r < 0) {
                failures++;
                start(ctx, c, counting);
            }
        }
        t = now();
        if (t - last_sweep >= 0.05) { /* timers: retransmissions and abandoned handshakes */
            last_sweep = t;
            for (int i = 0; i < clients; i++) {
                struct client *c = &pool[i];
                if (t - c->started > give_up) {
                    retries++;
                    start(ctx, c, counting);
                } else if (DTLSv1_handle_timeout(c->ssl) < 0) {
                    failures++;
                    start(ctx, c, counting);
                }
            }
        }
    }
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    long ports = 0;
    for (int p = 0; p < 65536; p++)
        ports += port_seen[p];
    printf("done handshakes=%ld seconds=%.3f user=%.3f sys=%.3f ports=%ld retries=%ld"
           " failures=%ld\n",
           handshakes, seconds, cpu_of(&ru1.ru_utime) - cpu_of(&ru0.ru_utime),
           cpu_of(&ru1.ru_stime) - cpu_of(&ru0.ru_stime), ports, retries, failures);
    fflush(stdout);
    for (int i = 0; i < clients; i++)
        SSL_free(pool[i].ssl);
    for (int i = 0; i < pool_size; i++)
        close(sockets[i].fd);
    SSL_CTX_free(ctx);
    return 0;
}

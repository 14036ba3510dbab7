/*
 * dtlsserve: a DTLS 1.2 server in C on OpenSSL's libssl, for bench/workers.py's comparison:
 * how a C server's handshake rate scales from one process to two on the same host, under the
 * same load generator (dtlsload.c) as `dtlsgate serve --workers N`. A test tool, not part of
 * dtlsgate.
 *
 * Its shape is that of `dtlsgate serve --workers N`: N processes (the first and N - 1 forked
 * from it, one process group) each bind one UDP socket to the same port with SO_REUSEPORT,
 * so that the kernel spreads the clients over them by their addresses; a cookie secret made
 * before the fork is shared, so each process verifies the others' cookies. Each process
 * runs one loop over its socket: a datagram from an address without an association goes to
 * OpenSSL's stateless DTLSv1_listen (a HelloVerifyRequest, or an association once the cookie
 * verifies); one with an association to that association's SSL, through memory BIOs (what
 * OpenSSL writes is sent with sendto, split at record boundaries). No Python anywhere: the
 * C-stack contender.
 *
 *   --psk ID:HEX         TLS_PSK_WITH_AES_128_CCM_8 only, no certificate;
 *   --cert F --key F     ECDHE-ECDSA (x25519) with AES-128-GCM only.
 * Extended master secret as OpenSSL does by default; no session cache and no tickets (the
 * generator never resumes). The server retransmits its flight on OpenSSL's timer, and
 * forgets an association at the client's close_notify, or after 10 s without a datagram.
 *
 * Prints "serving" on stderr once bound and, at SIGINT or SIGTERM (or after --max-seconds),
 *   dtlsserve[PID]: stopped: N handshakes completed, F failed, H HelloVerifyRequests
 * (the first words those of dtlsgate serve's summary, which the bench reads).
 *
 * Usage: dtlsserve --port P [--host 127.0.0.1] [--workers 1] [--max-seconds 900]
 *                  (--psk ID:HEX | --cert FILE --key FILE)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 4096
#define MTU 1400
#define IDLE_SECONDS 10.0
#define MAX_PSK 64

struct assoc {
    struct sockaddr_in peer;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int established;
    double last;
    struct assoc *next;
};

static struct assoc *table[BUCKETS];
static SSL_CTX *ctx;
static SSL *scratch; /* DTLSv1_listen's SSL, until a cookie verifies: then an association's */
static BIO_ADDR *listen_addr;
static struct sockaddr_in current_peer; /* the peer whose datagram is being handled */
static uint8_t cookie_secret[32];
static char psk_identity[256];
static uint8_t psk_key[MAX_PSK];
static size_t psk_length;
static int sock;
static long handshakes, failed, cookie_requests;
static volatile sig_atomic_t stopping;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "dtlsserve: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static unsigned bucket_of(const struct sockaddr_in *a) {
    uint32_t h = a->sin_addr.s_addr * 2654435761u ^ (uint32_t)a->sin_port * 40503u;
    return (h ^ h >> 16) % BUCKETS;
}

static struct assoc **find(const struct sockaddr_in *a) {
    struct assoc **p = &table[bucket_of(a)];
    while (*p && ((*p)->peer.sin_addr.s_addr != a->sin_addr.s_addr ||
                  (*p)->peer.sin_port != a->sin_port))
        p = &(*p)->next;
    return p;
}

/* The cookie: HMAC-SHA256 of the peer's address and port under the shared secret, 16 bytes. */
static void cookie_for(const struct sockaddr_in *a, unsigned char *out) {
    unsigned char mac[32];
    unsigned int n = sizeof mac;
    unsigned char what[6];
    memcpy(what, &a->sin_addr.s_addr, 4);
    memcpy(what + 4, &a->sin_port, 2);
    HMAC(EVP_sha256(), cookie_secret, sizeof cookie_secret, what, sizeof what, mac, &n);
    memcpy(out, mac, 16);
}

static int generate_cookie(SSL *ssl, unsigned char *cookie, unsigned int *length) {
    (void)ssl;
    cookie_for(&current_peer, cookie);
    *length = 16;
    return 1;
}

static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int length) {
    unsigned char expected[16];
    (void)ssl;
    cookie_for(&current_peer, expected);
    return length == 16 && CRYPTO_memcmp(cookie, expected, 16) == 0;
}

static unsigned int psk_callback(SSL *ssl, const char *identity, unsigned char *psk,
                                 unsigned int max_length) {
    (void)ssl;
    if (!identity || strcmp(identity, psk_identity) != 0 || psk_length > max_length)
        return 0;
    memcpy(psk, psk_key, psk_length);
    return (unsigned int)psk_length;
}

static SSL *new_ssl(void) {
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio)
        die("SSL_new");
    BIO_set_mem_eof_return(rbio, -1); /* empty: "retry", not end of file */
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_mtu(ssl, MTU);
    SSL_set_accept_state(ssl);
    return ssl;
}

/* Send what OpenSSL wrote for `to`: whole records, at most MTU bytes a datagram. */
static void flush(SSL *ssl, const struct sockaddr_in *to) {
    static uint8_t out[65536];
    BIO *wbio = SSL_get_wbio(ssl);
    int n = BIO_read(wbio, out, sizeof out);
    if (n <= 0)
        return;
    size_t start = 0, end = 0;
    while (end < (size_t)n) {
        size_t record = 13 + ((size_t)out[end + 11] << 8 | out[end + 12]);
        if (end > start && end + record - start > MTU) {
            sendto(sock, out + start, end - start, 0, (const struct sockaddr *)to, sizeof *to);
            start = end;
        }
        end += record;
    }
    if (end > start)
        sendto(sock, out + start, (size_t)n - start, 0, (const struct sockaddr *)to, sizeof *to);
}

static void forget(struct assoc **p) {
    struct assoc *a = *p;
    *p = a->next;
    SSL_free(a->ssl);
    free(a);
}

/* Feed the association at *p one datagram's worth (already in its read BIO). */
static void advance(struct assoc **p) {
    struct assoc *a = *p;
    uint8_t buf[2048];
    if (!a->established) {
        int r = SSL_do_handshake(a->ssl);
        if (r == 1) {
            a->established = 1;
            handshakes++;
        } else if (SSL_get_error(a->ssl, r) != SSL_ERROR_WANT_READ) {
            failed++;
            flush(a->ssl, &a->peer); /* its alert */
            ERR_clear_error();
            forget(p);
            return;
        }
    }
    if (a->established) {
        for (;;) {
            int r = SSL_read(a->ssl, buf, sizeof buf);
            if (r > 0)
                continue; /* application data: not answered */
            int e = SSL_get_error(a->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                break;
            ERR_clear_error(); /* close_notify (SSL_ERROR_ZERO_RETURN), or an error */
            flush(a->ssl, &a->peer);
            forget(p);
            return;
        }
    }
    flush(a->ssl, &a->peer);
}

static void receive(const uint8_t *data, size_t n, const struct sockaddr_in *from) {
    struct assoc **p = find(from);
    /* A new ClientHello (epoch 0) from the address of an established association: the client
     * started over (its close_notify was lost); the old association goes. */
    if (*p && (*p)->established && n > 13 && data[0] == 22 && data[3] == 0 && data[4] == 0 &&
        data[13] == 1)
        forget(p);
    if (*p) {
        (*p)->last = now();
        BIO_write(SSL_get_rbio((*p)->ssl), data, (int)n);
        advance(p);
        return;
    }
    current_peer = *from;
    BIO_write(SSL_get_rbio(scratch), data, (int)n);
    int r = DTLSv1_listen(scratch, listen_addr);
    if (r <= 0) { /* a HelloVerifyRequest sent, or the datagram dropped */
        cookie_requests += BIO_ctrl_pending(SSL_get_wbio(scratch)) > 0;
        flush(scratch, from);
        (void)BIO_reset(SSL_get_rbio(scratch));
        ERR_clear_error();
        return;
    }
    struct assoc *a = calloc(1, sizeof *a);
    if (!a)
        die("calloc");
    a->peer = *from;
    a->ssl = scratch;
    a->last = now();
    *p = a;
    scratch = new_ssl();
    advance(p);
}

/* Retransmit flights whose timer ran out; forget associations idle for IDLE_SECONDS. */
static void sweep(double t) {
    for (unsigned i = 0; i < BUCKETS; i++) {
        struct assoc **p = &table[i];
        while (*p) {
            if (t - (*p)->last > IDLE_SECONDS) {
                forget(p);
                continue;
            }
            if (!(*p)->established && DTLSv1_handle_timeout((*p)->ssl) > 0)
                flush((*p)->ssl, &(*p)->peer);
            p = &(*p)->next;
        }
    }
}

static void serve(const char *host, int port, double max_seconds) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, rcvbuf = 4 << 20;
    struct timeval tick = {.tv_sec = 0, .tv_usec = 250000};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        die("--host: not an IPv4 address");
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick) < 0 ||
        bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("socket");
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    scratch = new_ssl();
    listen_addr = BIO_ADDR_new();
    fprintf(stderr, "dtlsserve[%d]: serving on %s:%d\n", (int)getpid(), host, port);
    double started = now(), last_sweep = started;
    static uint8_t datagram[65536];
    while (!stopping) {
        struct sockaddr_in from;
        socklen_t from_length = sizeof from;
        ssize_t n = recvfrom(sock, datagram, sizeof datagram, 0, (struct sockaddr *)&from,
                             &from_length);
        if (n > 0 && from.sin_family == AF_INET)
            receive(datagram, (size_t)n, &from);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            die("recvfrom");
        double t = now();
        if (t - last_sweep >= 0.25) {
            last_sweep = t;
            sweep(t);
            if (t - started > max_seconds)
                break;
        }
    }
    fprintf(stderr,
            "dtlsserve[%d]: stopped: %ld handshakes completed, %ld failed,"
            " %ld HelloVerifyRequests\n",
            (int)getpid(), handshakes, failed, cookie_requests);
}

static void parse_psk(const char *text) {
    const char *colon = strchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof psk_identity)
        die("--psk: IDENTITY:HEX");
    memcpy(psk_identity, text, (size_t)(colon - text));
    size_t digits = strlen(colon + 1);
    if (digits == 0 || digits % 2 || digits / 2 > MAX_PSK)
        die("--psk: the key in hex, at most 64 bytes");
    for (size_t i = 0; i < digits / 2; i++) {
        unsigned v;
        if (sscanf(colon + 1 + 2 * i, "%2x", &v) != 1)
            die("--psk: not hex");
        psk_key[i] = (uint8_t)v;
    }
    psk_length = digits / 2;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL, *psk = NULL;
    int port = 0, workers = 1;
    double max_seconds = 900;
    static const struct option options[] = {
        {"host", required_argument, 0, 'h'},    {"port", required_argument, 0, 'p'},
        {"workers", required_argument, 0, 'w'}, {"psk", required_argument, 0, 's'},
        {"cert", required_argument, 0, 'c'},    {"key", required_argument, 0, 'k'},
        {"max-seconds", required_argument, 0, 'm'}, {0, 0, 0, 0},
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'w': workers = atoi(optarg); break;
        case 's': psk = optarg; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'm': max_seconds = atof(optarg); break;
        default: die("usage: dtlsserve --port P [--workers N] (--psk ID:HEX | --cert F --key F)");
        }
    }
    if (port <= 0 || workers < 1 || workers > 64 || (!psk && !(cert && key)))
        die("usage: dtlsserve --port P [--workers N] (--psk ID:HEX | --cert F --key F)");

    ctx = SSL_CTX_new(DTLS_server_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION))
        die("SSL_CTX_new");
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_cookie_generate_cb(ctx, generate_cookie);
    SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);
    if (psk) {
        parse_psk(psk);
        SSL_CTX_set_psk_server_callback(ctx, psk_callback);
        if (!SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM8"))
            die("PSK-AES128-CCM8");
    } else {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            !SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256") ||
            !SSL_CTX_set1_groups_list(ctx, "X25519"))
            die("the certificate, key, suite or group");
    }
    if (RAND_bytes(cookie_secret, sizeof cookie_secret) != 1)
        die("RAND_bytes");

    struct sigaction sa = {0}; /* no SA_RESTART: recvfrom returns EINTR */
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pid_t parent = getpid();
    for (int i = 1; i < workers; i++) {
        pid_t child = fork();
        if (child < 0)
            die("fork");
        if (child == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent)
                return 0;
            serve(host, port, max_seconds);
            return 0;
        }
    }
    serve(host, port, max_seconds);
    for (int i = 1; i < workers; i++)
        wait(NULL);
    return 0;
}

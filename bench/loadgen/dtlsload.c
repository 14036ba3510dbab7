/*
 * dtlsload: a DTLS 1.2 handshake load generator for bench/workers.py. A test tool, not part
 * of dtlsgate: it uses OpenSSL's libcrypto for SHA-256, AES and X25519.
 *
 * It has to cost the machine far less per handshake than the server it loads, since both
 * share two cores. OpenSSL's own DTLS client cost 130-170 us of CPU per PSK handshake and
 * about 480 us per ECDHE certificate handshake here (git history of this file), as much as a
 * third to all of what the server spent. So the client side of the two handshakes measured
 * is written out here with only what a load generator needs (RFC 6347 framing, RFC 5246
 * PRF, RFC 7627 extended master secret):
 *   --psk ID:HEX  TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655), no key exchange on the client;
 *   (default)     TLS_ECDHE_ECDSA/RSA_WITH_AES_128_GCM_SHA256 over x25519. The client
 *                 reuses one x25519 key for every handshake (one scalar multiplication per
 *                 handshake instead of two) and does not check the server's certificate or
 *                 its ServerKeyExchange signature; the server's work is that of any client.
 * The client checks nothing the server sends beyond what it needs to go on: a handshake
 * counts as completed when the server's encrypted Finished arrives (a server that rejected
 * our Finished would send an alert instead). Then it sends close_notify, so the server
 * forgets the association, and starts over as a new client. An epoch 1 record that arrives
 * before this handshake has epoch 1 keys cannot be part of it (RFC 6347 §4.1: a real client
 * drops it, or buffers it and then fails to decrypt it): a record of an earlier association
 * on the same source port. It is counted as "stray", not as a failure.
 *
 * K clients run at once on one epoll loop. Sockets are made once and lent round-robin, so
 * consecutive handshakes come from different source ports (the server's SO_REUSEPORT group
 * spreads them) without a socket(), bind() and close() each. A flight not answered within
 * a second is sent again; a handshake not done after --give-up seconds is abandoned. With
 * --nap US, when few datagrams were waiting the loop sleeps US microseconds before the next
 * epoll_wait: against a fast server, a sleep and wake-up per datagram was 40% of this
 * process's CPU (perf), and the waking generator preempted the server.
 *
 * After --warmup seconds it prints "counting" (the caller samples the server's CPU time
 * then), counts the handshakes completed for --seconds, prints one line
 *   done handshakes=N seconds=S user=U sys=S ports=P resent=R abandoned=A failures=F stray=X
 * (user, sys: this process's own CPU seconds in the counted window, from getrusage; ports:
 * distinct source ports the counted handshakes started from) and exits.
 *
 * Usage: dtlsload --port P [--host 127.0.0.1] [--clients 16] [--warmup 2] [--seconds 10]
 *                 [--give-up 5] [--sockets 8K] [--nap US] [--psk IDENTITY:HEX]
 */
#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: no per-call fetch */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
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
#define MAX_MESSAGE 16384 /* a server handshake message; certificates are far smaller here */
#define MAX_FLIGHT 1024   /* what the client sends at once */
#define RESEND_SECONDS 1.0
#define DTLS12 0xFEFD
#define SUITE_PSK_CCM8 0xC0A8
#define X25519 0x001D

enum { CT_CCS = 20, CT_ALERT = 21, CT_HANDSHAKE = 22 };
enum {
    HS_SERVER_HELLO = 2,
    HS_HELLO_VERIFY_REQUEST = 3,
    HS_CERTIFICATE = 11,
    HS_SERVER_KEY_EXCHANGE = 12,
    HS_SERVER_HELLO_DONE = 14,
    HS_CLIENT_KEY_EXCHANGE = 16,
    HS_FINISHED = 20,
    HS_CLIENT_HELLO = 1,
};
enum { WAIT_SERVER_HELLO, WAIT_SERVER_HELLO_DONE, WAIT_FINISHED };

struct client {
    int sock; /* index into the socket pool, -1 before the first handshake */
    int state;
    double started, sent_at;
    uint8_t client_random[32], server_random[32];
    uint8_t server_point[32];
    int have_point, extended_master_secret;
    uint16_t suite;
    SHA256_CTX transcript;
    uint16_t send_message_seq, recv_message_seq;
    uint64_t record_seq; /* epoch 0 */
    /* the server's handshake message being reassembled (fragments in order only) */
    uint8_t message[MAX_MESSAGE];
    uint32_t message_length, message_have;
    uint8_t message_type;
    int message_open;
    uint8_t flight[MAX_FLIGHT]; /* the last flight, sent again if unanswered */
    size_t flight_length;
    uint8_t write_key[16], write_iv[4];
};

struct pool_socket {
    int fd;
    unsigned short port;
    struct client *owner; /* NULL while free: what arrives then is late, and dropped */
};

static struct sockaddr_in server_addr;
static uint8_t psk_identity[256];
static size_t psk_identity_length;
static uint8_t psk_key[MAX_PSK];
static size_t psk_length;
static unsigned char port_seen[65536];
static struct pool_socket *sockets;
static int *free_ring, ring_head, ring_count, pool_size;
static EVP_PKEY *our_key;         /* x25519, one for every handshake */
static uint8_t our_point[32];     /* its public value */
static EVP_CIPHER *gcm, *ccm;     /* fetched once */
static EVP_CIPHER_CTX *aead;
static EVP_PKEY_CTX *derive;      /* x25519 with our key, set up once */
static EVP_PKEY *peer;            /* the server's x25519 key, its value set per handshake */
static long failures, resent, abandoned, stray;
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

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

static void fail(const char *why) {
    static int reported;
    if (!reported) { /* the first failure's reason, once */
        reported = 1;
        fprintf(stderr, "dtlsload: a handshake failed: %s\n", why);
    }
    failures++;
}

/* A client random needs to be unique, not secret, in a load generator. */
static void fill_random(uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        out[i] = (uint8_t)rng_state;
    }
}

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put24(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)(v >> 16);
    put16(p + 1, v);
}

static void put48(uint8_t *p, uint64_t v) {
    for (int i = 5; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static unsigned get24(const uint8_t *p) { return (unsigned)p[0] << 16 | get16(p + 1); }

/* ---- HMAC-SHA256 and the TLS 1.2 PRF (RFC 2104, RFC 5246 §5) ---------------------------- */

struct hmac {
    SHA256_CTX inner, outer; /* keyed once, copied per use */
};

static void hmac_key(struct hmac *h, const uint8_t *key, size_t length) {
    uint8_t block[64] = {0}, pad[64];
    if (length > 64)
        SHA256(key, length, block);
    else
        memcpy(block, key, length);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, 64);
}

static void hmac(const struct hmac *h, const uint8_t *a, size_t a_length, const uint8_t *b,
                 size_t b_length, uint8_t out[32]) {
    SHA256_CTX ctx = h->inner;
    SHA256_Update(&ctx, a, a_length);
    if (b_length)
        SHA256_Update(&ctx, b, b_length);
    SHA256_Final(out, &ctx);
    ctx = h->outer;
    SHA256_Update(&ctx, out, 32);
    SHA256_Final(out, &ctx);
}

static void prf(const uint8_t *secret, size_t secret_length, const char *label,
                const uint8_t *seed, size_t seed_length, uint8_t *out, size_t length) {
    struct hmac h;
    uint8_t label_seed[128], a[32], block[32];
    size_t label_length = strlen(label);
    memcpy(label_seed, label, label_length);
    memcpy(label_seed + label_length, seed, seed_length);
    size_t ls_length = label_length + seed_length;
    hmac_key(&h, secret, secret_length);
    hmac(&h, label_seed, ls_length, NULL, 0, a); /* A(1) */
    while (length) {
        hmac(&h, a, 32, label_seed, ls_length, block);
        size_t n = length < 32 ? length : 32;
        memcpy(out, block, n);
        out += n;
        length -= n;
        hmac(&h, a, 32, NULL, 0, a);
    }
}

/* ---- records ------------------------------------------------------------------------ */

/* A plaintext record (epoch 0) appended at ``out``; returns its length. */
static size_t plain_record(struct client *c, uint8_t *out, int type, const uint8_t *body,
                           size_t length) {
    out[0] = (uint8_t)type;
    put16(out + 1, DTLS12);
    put16(out + 3, 0);
    put48(out + 5, c->record_seq++);
    put16(out + 11, (unsigned)length);
    memcpy(out + 13, body, length);
    return 13 + length;
}

/* An epoch 1 record (RFC 5246 §6.2.3.3 AEAD; nonce = IV salt + explicit sequence). */
static size_t sealed_record(struct client *c, uint8_t *out, int type, uint64_t seq,
                            const uint8_t *body, size_t length) {
    int tag_length = c->suite == SUITE_PSK_CCM8 ? 8 : 16;
    uint8_t aad[13], nonce[12];
    put16(aad, 1);
    put48(aad + 2, seq);
    aad[8] = (uint8_t)type;
    put16(aad + 9, DTLS12);
    put16(aad + 11, (unsigned)length);
    memcpy(nonce, c->write_iv, 4);
    memcpy(nonce + 4, aad, 8);
    out[0] = (uint8_t)type;
    put16(out + 1, DTLS12);
    memcpy(out + 3, aad, 8); /* epoch and sequence number */
    put16(out + 11, (unsigned)(8 + length + (size_t)tag_length));
    memcpy(out + 13, aad, 8); /* the explicit nonce */
    uint8_t *ciphertext = out + 21;
    int n;
    int ok;
    if (c->suite == SUITE_PSK_CCM8) {
        ok = EVP_EncryptInit_ex(aead, ccm, NULL, NULL, NULL) &&
             EVP_CIPHER_CTX_ctrl(aead, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) &&
             EVP_CIPHER_CTX_ctrl(aead, EVP_CTRL_AEAD_SET_TAG, 8, NULL) &&
             EVP_EncryptInit_ex(aead, NULL, NULL, c->write_key, nonce) &&
             EVP_EncryptUpdate(aead, NULL, &n, NULL, (int)length);
    } else {
        ok = EVP_EncryptInit_ex(aead, gcm, NULL, c->write_key, nonce);
    }
    ok = ok && EVP_EncryptUpdate(aead, NULL, &n, aad, 13) &&
         EVP_EncryptUpdate(aead, ciphertext, &n, body, (int)length) &&
         EVP_EncryptFinal_ex(aead, ciphertext + n, &n) &&
         EVP_CIPHER_CTX_ctrl(aead, EVP_CTRL_AEAD_GET_TAG, tag_length, ciphertext + length);
    if (!ok)
        die("AEAD");
    return 13 + 8 + length + (size_t)tag_length;
}

/* A handshake message, unfragmented: 12-byte DTLS header (RFC 6347 §4.2.2) then the body.
 * Returns its length; it goes into the transcript as sent. */
static size_t handshake_message(struct client *c, uint8_t *out, int type, const uint8_t *body,
                                size_t length) {
    out[0] = (uint8_t)type;
    put24(out + 1, (unsigned)length);
    put16(out + 4, c->send_message_seq++);
    put24(out + 6, 0);
    put24(out + 9, (unsigned)length);
    memcpy(out + 12, body, length);
    SHA256_Update(&c->transcript, out, 12 + length);
    return 12 + length;
}

static void send_flight(struct client *c) {
    if (send(sockets[c->sock].fd, c->flight, c->flight_length, 0) < 0 && errno != EAGAIN &&
        errno != ECONNREFUSED)
        die("send");
    c->sent_at = now();
}

/* ---- the client's flights ----------------------------------------------------------- */

static void send_client_hello(struct client *c, const uint8_t *cookie, size_t cookie_length) {
    uint8_t body[512], message[600];
    size_t n = 0;
    put16(body, DTLS12);
    memcpy(body + 2, c->client_random, 32);
    n = 34;
    body[n++] = 0; /* no session id */
    body[n++] = (uint8_t)cookie_length;
    memcpy(body + n, cookie, cookie_length);
    n += cookie_length;
    static const uint8_t psk_suites[] = {0, 2, 0xC0, 0xA8};
    static const uint8_t cert_suites[] = {0, 4, 0xC0, 0x2B, 0xC0, 0x2F};
    const uint8_t *suites = psk_length ? psk_suites : cert_suites;
    size_t suites_length = psk_length ? sizeof psk_suites : sizeof cert_suites;
    memcpy(body + n, suites, suites_length);
    n += suites_length;
    body[n++] = 1; /* compression methods: null */
    body[n++] = 0;
    static const uint8_t common[] = {
        0x00, 0x17, 0x00, 0x00,      /* extended_master_secret (RFC 7627) */
        0xff, 0x01, 0x00, 0x01, 0x00 /* renegotiation_info, empty (RFC 5746) */
    };
    static const uint8_t ecdhe[] = {
        /* supported_groups: x25519 for the key exchange; secp256r1 lets a server use its
         * P-256 certificate (RFC 4492 §5.1 ties the certificate's curve to this list) */
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17,
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,             /* ec_point_formats: uncompressed */
        0x00, 0x0d, 0x00, 0x0a, 0x00, 0x08,             /* signature_algorithms: */
        0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x08, 0x07  /* ECDSA, PSS, PKCS1, Ed25519 */
    };
    size_t extensions_length = sizeof common + (psk_length ? 0 : sizeof ecdhe);
    put16(body + n, (unsigned)extensions_length);
    n += 2;
    memcpy(body + n, common, sizeof common);
    n += sizeof common;
    if (!psk_length) {
        memcpy(body + n, ecdhe, sizeof ecdhe);
        n += sizeof ecdhe;
    }
    /* Only the ClientHello answered by the ServerHello is hashed (RFC 6347 §4.2.1). */
    SHA256_Init(&c->transcript);
    size_t m = handshake_message(c, message, HS_CLIENT_HELLO, body, n);
    c->flight_length = plain_record(c, c->flight, CT_HANDSHAKE, message, m);
    send_flight(c);
}

/* ClientKeyExchange, ChangeCipherSpec and Finished in one datagram. */
static int send_client_finished(struct client *c) {
    uint8_t premaster[2 * MAX_PSK + 4], body[300], message[320];
    size_t premaster_length, n;
    if (psk_length) { /* RFC 4279 §2: N zero bytes, then the PSK, each with its length */
        n = 0;
        put16(body, (unsigned)psk_identity_length);
        memcpy(body + 2, psk_identity, psk_identity_length);
        n = 2 + psk_identity_length;
        put16(premaster, (unsigned)psk_length);
        memset(premaster + 2, 0, psk_length);
        put16(premaster + 2 + psk_length, (unsigned)psk_length);
        memcpy(premaster + 4 + psk_length, psk_key, psk_length);
        premaster_length = 4 + 2 * psk_length;
    } else {
        if (!c->have_point)
            return -1;
        body[0] = 32;
        memcpy(body + 1, our_point, 32);
        n = 33;
        /* one peer key object, its public value replaced: no algorithm lookup per handshake */
        premaster_length = 32;
        int ok = EVP_PKEY_set1_encoded_public_key(peer, c->server_point, 32) > 0 &&
                 EVP_PKEY_derive_set_peer_ex(derive, peer, 0) > 0 &&
                 EVP_PKEY_derive(derive, premaster, &premaster_length) > 0;
        if (!ok) {
            ERR_clear_error();
            return -1;
        }
    }
    size_t at = 0;
    size_t m = handshake_message(c, message, HS_CLIENT_KEY_EXCHANGE, body, n);
    at += plain_record(c, c->flight + at, CT_HANDSHAKE, message, m);
    uint8_t session_hash[32], master[48], randoms[64], key_block[40];
    SHA256_CTX copy = c->transcript;
    SHA256_Final(session_hash, &copy); /* also the Finished's hash: nothing comes between */
    if (c->extended_master_secret) {
        prf(premaster, premaster_length, "extended master secret", session_hash, 32, master, 48);
    } else {
        memcpy(randoms, c->client_random, 32);
        memcpy(randoms + 32, c->server_random, 32);
        prf(premaster, premaster_length, "master secret", randoms, 64, master, 48);
    }
    memcpy(randoms, c->server_random, 32);
    memcpy(randoms + 32, c->client_random, 32);
    /* client_write_key, server_write_key, client_write_IV, server_write_IV (RFC 5246 §6.3) */
    prf(master, 48, "key expansion", randoms, 64, key_block, sizeof key_block);
    memcpy(c->write_key, key_block, 16);
    memcpy(c->write_iv, key_block + 32, 4);
    static const uint8_t change_cipher_spec = 1;
    at += plain_record(c, c->flight + at, CT_CCS, &change_cipher_spec, 1);
    uint8_t verify_data[12];
    prf(master, 48, "client finished", session_hash, 32, verify_data, 12);
    m = handshake_message(c, message, HS_FINISHED, verify_data, 12);
    at += sealed_record(c, c->flight + at, CT_HANDSHAKE, 0, message, m);
    c->flight_length = at;
    send_flight(c);
    return 0;
}

static void send_close_notify(struct client *c) {
    static const uint8_t close_notify[] = {1, 0}; /* warning, close_notify */
    uint8_t record[64];
    size_t n = sealed_record(c, record, CT_ALERT, 1, close_notify, 2);
    send(sockets[c->sock].fd, record, n, 0);
}

/* ---- the server's messages ---------------------------------------------------------- */

static int parse_server_hello(struct client *c, const uint8_t *p, uint32_t length) {
    if (length < 38 || get16(p) != DTLS12)
        return -1;
    memcpy(c->server_random, p + 2, 32);
    uint32_t at = 34 + 1 + p[34]; /* skip the session id */
    if (at + 3 > length)
        return -1;
    c->suite = (uint16_t)get16(p + at);
    at += 3; /* suite, compression */
    c->extended_master_secret = 0;
    if (at + 2 <= length) {
        uint32_t end = at + 2 + get16(p + at);
        if (end > length)
            return -1;
        for (at += 2; at + 4 <= end; at += 4 + get16(p + at + 2))
            if (get16(p + at) == 0x0017)
                c->extended_master_secret = 1;
    }
    return c->suite == SUITE_PSK_CCM8 || c->suite == 0xC02B || c->suite == 0xC02F ? 0 : -1;
}

/* ECDHE: the server's x25519 point; its signature is not checked (a load generator). */
static int parse_server_key_exchange(struct client *c, const uint8_t *p, uint32_t length) {
    if (c->suite == SUITE_PSK_CCM8)
        return 0; /* a PSK identity hint */
    if (length < 36 || p[0] != 3 || get16(p + 1) != X25519 || p[3] != 32)
        return -1;
    memcpy(c->server_point, p + 4, 32);
    c->have_point = 1;
    return 0;
}

/* A whole server handshake message: 0 to go on, -1 on failure. */
static int on_message(struct client *c, int type, const uint8_t *header, const uint8_t *body,
                      uint32_t length) {
    if (type == HS_HELLO_VERIFY_REQUEST) {
        if (c->state != WAIT_SERVER_HELLO || length < 3 || 3u + body[2] > length)
            return -1;
        send_client_hello(c, body + 3, body[2]);
        return 0;
    }
    /* the transcript has the message as if sent unfragmented */
    uint8_t whole[12];
    memcpy(whole, header, 6);
    put24(whole + 6, 0);
    put24(whole + 9, length);
    SHA256_Update(&c->transcript, whole, 12);
    SHA256_Update(&c->transcript, body, length);
    switch (type) {
    case HS_SERVER_HELLO:
        if (c->state != WAIT_SERVER_HELLO || parse_server_hello(c, body, length) < 0)
            return -1;
        c->state = WAIT_SERVER_HELLO_DONE;
        return 0;
    case HS_CERTIFICATE:
        return c->state == WAIT_SERVER_HELLO_DONE ? 0 : -1;
    case HS_SERVER_KEY_EXCHANGE:
        if (c->state != WAIT_SERVER_HELLO_DONE)
            return -1;
        return parse_server_key_exchange(c, body, length);
    case HS_SERVER_HELLO_DONE:
        if (c->state != WAIT_SERVER_HELLO_DONE || send_client_finished(c) < 0)
            return -1;
        c->state = WAIT_FINISHED;
        return 0;
    default:
        return -1; /* e.g. a CertificateRequest: not in these handshakes */
    }
}

/* The handshake fragments of one plaintext record; in-order fragments are reassembled and
 * anything else (a retransmission, a fragment out of order) is left to the resend timer. */
static int on_handshake_record(struct client *c, const uint8_t *p, size_t length) {
    while (length >= 12) {
        uint32_t total = get24(p + 1), seq = get16(p + 4), offset = get24(p + 6);
        uint32_t fragment = get24(p + 9);
        if (12u + fragment > length || total > MAX_MESSAGE || offset + fragment > total)
            return -1;
        if (seq == c->recv_message_seq || (c->state == WAIT_SERVER_HELLO && seq > c->recv_message_seq)) {
            if (!c->message_open && offset == 0) {
                c->message_open = 1;
                c->message_type = p[0];
                c->message_length = total;
                c->message_have = 0;
                c->recv_message_seq = (uint16_t)seq;
            }
            if (c->message_open && offset == c->message_have && p[0] == c->message_type) {
                memcpy(c->message + offset, p + 12, fragment);
                c->message_have += fragment;
                if (c->message_have == c->message_length) {
                    c->message_open = 0;
                    c->recv_message_seq++;
                    if (on_message(c, c->message_type, p, c->message, c->message_length) < 0)
                        return -1;
                }
            }
        }
        p += 12 + fragment;
        length -= 12 + fragment;
    }
    return 0;
}

/* One datagram: 1 when the handshake completed, 0 to wait, -1 on failure. */
static int on_datagram(struct client *c, const uint8_t *p, size_t length) {
    while (length >= 13) {
        int type = p[0];
        unsigned epoch = get16(p + 3);
        size_t record_length = get16(p + 11);
        if (13 + record_length > length)
            return 0;
        if (epoch != 0 && c->state != WAIT_FINISHED) {
            stray++; /* not of this handshake: no epoch 1 keys yet (header comment) */
        } else if (type == CT_ALERT) {
            fail("the server sent an alert");
            return -1;
        } else if (type == CT_HANDSHAKE && epoch == 1 && c->state == WAIT_FINISHED) {
            return 1; /* the server's Finished: it accepted ours */
        } else if (type == CT_HANDSHAKE && epoch == 0 &&
                   on_handshake_record(c, p + 13, record_length) < 0) {
            fail("a handshake message that does not fit");
            return -1;
        }
        p += 13 + record_length;
        length -= 13 + record_length;
    }
    return 0;
}

/* ---- clients and sockets ------------------------------------------------------------ */

static void open_pool(int epfd) {
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max; /* a socket per pool slot */
        setrlimit(RLIMIT_NOFILE, &files);
    }
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

/* A new handshake for ``c``, as a new client: the next free socket, a fresh state. */
static void start(struct client *c, int counting) {
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
    c->state = WAIT_SERVER_HELLO;
    c->have_point = 0;
    c->send_message_seq = c->recv_message_seq = 0;
    c->record_seq = 0;
    c->message_open = 0;
    fill_random(c->client_random, 32);
    c->started = now();
    send_client_hello(c, NULL, 0);
}

/* A datagram for a socket that no client holds (a late retransmission or close_notify). */
static void drop_late(struct pool_socket *s) {
    uint8_t buf[2048];
    while (recv(s->fd, buf, sizeof buf, 0) >= 0 || errno == EINTR)
        ;
}

static int parse_psk(const char *text) {
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) > sizeof psk_identity)
        return -1;
    psk_identity_length = (size_t)(colon - text);
    memcpy(psk_identity, text, psk_identity_length);
    const char *hex = colon + 1;
    size_t digits = strlen(hex);
    if (digits == 0 || digits % 2 || digits / 2 > MAX_PSK)
        return -1;
    for (size_t i = 0; i < digits / 2; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        psk_key[i] = (uint8_t)byte;
    }
    psk_length = digits / 2;
    return 0;
}

static void setup_crypto(void) {
    gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    ccm = EVP_CIPHER_fetch(NULL, "AES-128-CCM", NULL);
    aead = EVP_CIPHER_CTX_new();
    EVP_PKEY_CTX *keygen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    size_t length = 32;
    if (!gcm || !ccm || !aead || !keygen || EVP_PKEY_keygen_init(keygen) <= 0 ||
        EVP_PKEY_keygen(keygen, &our_key) <= 0 ||
        !EVP_PKEY_get_raw_public_key(our_key, our_point, &length))
        die("crypto setup");
    EVP_PKEY_CTX_free(keygen);
    derive = EVP_PKEY_CTX_new(our_key, NULL);
    peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, our_point, 32);
    if (!derive || !peer || EVP_PKEY_derive_init(derive) <= 0)
        die("x25519 setup");
    uint8_t seed[8];
    FILE *urandom = fopen("/dev/urandom", "rb");
    if (urandom && fread(seed, 1, 8, urandom) == 8)
        memcpy(&rng_state, seed, 8);
    if (urandom)
        fclose(urandom);
    rng_state |= 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, clients = 16, nap_us = 0;
    double warmup = 2.0, seconds = 10.0, give_up = 5.0;
    static const struct option options[] = {
        {"host", required_argument, 0, 'h'},    {"port", required_argument, 0, 'p'},
        {"clients", required_argument, 0, 'c'}, {"warmup", required_argument, 0, 'w'},
        {"seconds", required_argument, 0, 's'}, {"give-up", required_argument, 0, 'g'},
        {"psk", required_argument, 0, 'k'},     {"sockets", required_argument, 0, 'n'},
        {"nap", required_argument, 0, 'z'},     {0, 0, 0, 0}};
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
        case 'n': pool_size = atoi(optarg); break;
        case 'z': nap_us = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!pool_size)
        pool_size = clients * 8 < 256 ? 256 : clients * 8;
    if (port <= 0 || port > 65535 || clients < 1 || clients > MAX_CLIENTS || seconds <= 0 ||
        pool_size <= clients)
        die("usage: dtlsload --port P [--clients K] [--sockets N > K] [--warmup W] [--seconds S]"
            " [--give-up G] [--psk ID:HEX]");
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1)
        die("--host wants an IPv4 address");
    setup_crypto();

    int epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    open_pool(epfd);
    struct client *pool = calloc((size_t)clients, sizeof *pool);
    if (!pool)
        die("calloc");
    for (int i = 0; i < clients; i++) {
        pool[i].sock = -1;
        start(&pool[i], 0);
    }

    double begin = now(), counted_from = begin + warmup, end = counted_from + seconds;
    int counting = 0;
    long handshakes = 0;
    struct rusage ru0 = {0};
    struct epoll_event events[256];
    double last_sweep = begin;
    uint8_t datagram[65536];
    for (;;) {
        double t = now();
        if (!counting && t >= counted_from) {
            counting = 1;
            getrusage(RUSAGE_SELF, &ru0);
            handshakes = resent = abandoned = failures = stray = 0;
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
            /* One datagram per event: epoll reports the socket again if there is more (a
             * loop to EAGAIN would cost a failed recv per datagram). */
            ssize_t got = recv(s->fd, datagram, sizeof datagram, 0);
            if (got < 0)
                continue;
            int r = on_datagram(c, datagram, (size_t)got);
            if (r == 1) {
                send_close_notify(c); /* the server forgets the association */
                handshakes++;
                start(c, counting);
            } else if (r < 0) {
                start(c, counting);
            }
        }
        if (nap_us && n < clients / 4) {
            /* few datagrams were waiting: let more gather (--nap, above) */
            struct timespec nap = {0, nap_us * 1000L};
            nanosleep(&nap, NULL);
        }
        t = now();
        if (t - last_sweep >= 0.05) { /* timers: flights to send again, handshakes to abandon */
            last_sweep = t;
            for (int i = 0; i < clients; i++) {
                struct client *c = &pool[i];
                if (t - c->started > give_up) {
                    abandoned++;
                    start(c, counting);
                } else if (t - c->sent_at > RESEND_SECONDS) {
                    resent++;
                    send_flight(c);
                }
            }
        }
    }
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    long ports = 0;
    for (int p = 0; p < 65536; p++)
        ports += port_seen[p];
    printf("done handshakes=%ld seconds=%.3f user=%.3f sys=%.3f ports=%ld resent=%ld"
           " abandoned=%ld failures=%ld stray=%ld\n",
           handshakes, seconds, cpu_of(&ru1.ru_utime) - cpu_of(&ru0.ru_utime),
           cpu_of(&ru1.ru_stime) - cpu_of(&ru0.ru_stime), ports, resent, abandoned, failures,
           stray);
    fflush(stdout);
    for (int i = 0; i < pool_size; i++)
        close(sockets[i].fd);
    return 0;
}

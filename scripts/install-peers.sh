#!/bin/sh
# Install the real TLS/DTLS peers the interop tests start (openssl, gnutls-bin, and libcoap's
# coap-client/coap-server built on OpenSSL and GnuTLS, libcoap3-bin) and the capture tool
# (tshark), through apt-get, when they are absent; the build tools of tinydtls (PyPI
# DTLSSocket builds it from source with autoconf, automake and libtool); and wolfSSL with
# DTLS 1.3 (scripts/build-wolfssl.sh).
set -eu
missing=""
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v gnutls-cli >/dev/null 2>&1 || missing="$missing gnutls-bin"
command -v gnutls-serv >/dev/null 2>&1 || missing="$missing gnutls-bin"
command -v tshark >/dev/null 2>&1 || missing="$missing tshark"
command -v coap-client-openssl >/dev/null 2>&1 || missing="$missing libcoap3-bin"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v autoconf >/dev/null 2>&1 || missing="$missing autoconf"
command -v automake >/dev/null 2>&1 || missing="$missing automake"
command -v libtoolize >/dev/null 2>&1 || missing="$missing libtool"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
if [ -n "$missing" ]; then
    echo "install-peers: installing$missing" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" \
        | $sudo_cmd debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing
fi

# wolfSSL with DTLS 1.3, the only DTLS 1.3 peer here: built once from Debian's source package
# into a cache outside the checkout (a fresh clone reuses it). A failed build leaves a marker
# beside the cache that makes the wolfSSL interop tests fail with the build log's tail; the
# other peers' tests still run.
sh "$(dirname "$0")/build-wolfssl.sh" \
    || echo "install-peers: the wolfSSL build failed; its interop tests will fail" >&2

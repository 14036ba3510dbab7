#!/bin/sh
# Build wolfSSL 5.5.4 with DTLS 1.3 from Debian's source package, once, into a cache outside
# the checkout (the only DTLS 1.3 peer on these machines; Debian's binary libwolfssl has no
# DTLS 1.3). The interop tests run its example client and server from the source tree
# (libtool wrappers) and find it through the same paths as tests/peers.py:
#   $CACHE/wolfssl-5.5.4/                 the built source tree
#   $CACHE/wolfssl-5.5.4/.dtlsgate-built  the stamp: written after a complete build, holding
#                                          the recipe number below
#   $CACHE/wolfssl-5.5.4.log              the last build's log
#   $CACHE/wolfssl-5.5.4.failed           present after a failed build: the tests then FAIL
#                                          with the log's tail instead of skipping
# Idempotent (a stamp of the current recipe means nothing to do; a stamp of an older recipe
# means a rebuild) and safe to run twice at once (flock: the second run waits and then finds
# the stamp). CACHE defaults to /var/cache/dtlsgate and can be
# moved with DTLSGATE_CACHE (tests/peers.py reads the same variable).
set -eu

VERSION=5.5.4
# Bump when the configure line changes, so that caches built by an older recipe are rebuilt
# (tests/peers.py reads this line too).
RECIPE=2
CACHE=${DTLSGATE_CACHE:-/var/cache/dtlsgate}
TREE=$CACHE/wolfssl-$VERSION
STAMP=$TREE/.dtlsgate-built
LOG=$CACHE/wolfssl-$VERSION.log
FAILED=$CACHE/wolfssl-$VERSION.failed
SOURCES=/etc/apt/sources.list.d/debian-src.sources

built() { [ "$(cat "$STAMP" 2>/dev/null)" = "recipe $RECIPE" ]; }
built && exit 0

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd mkdir -p "$CACHE"
[ -w "$CACHE" ] || $sudo_cmd chown "$(id -u):$(id -g)" "$CACHE"

# One builder at a time; a second run waits (bounded) for the first, then re-checks the stamp.
exec 9>"$CACHE/wolfssl.lock"
if ! flock -w 900 9; then
    echo "build-wolfssl: another build still holds $CACHE/wolfssl.lock after 900 s" >&2
    exit 1
fi
built && exit 0

build() {
    set -eu
    # Debian's source entries: the same archives as the binary entries, Types deb-src.
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ \
        && ! grep -qs '^deb-src' /etc/apt/sources.list; then
        echo "build-wolfssl: adding $SOURCES"
        $sudo_cmd tee "$SOURCES" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq \
        autoconf automake libtool make gcc dpkg-dev
    work=$CACHE/wolfssl-download
    rm -rf "$work" "$TREE"
    mkdir -p "$work"
    (cd "$work" && apt-get source --download-only wolfssl)
    orig=$(ls "$work"/wolfssl_"$VERSION"*.orig.tar.* | head -n 1)
    mkdir -p "$TREE"
    tar -xf "$orig" -C "$TREE" --strip-components=1
    rm -rf "$work"
    cd "$TREE"
    ./autogen.sh
    # WOLFSSL_STATIC_PSK: plain PSK suites such as PSK-AES128-CCM-8 (no ECDHE).
    # HAVE_SECRET_CALLBACK: wolfSSL_set_tls13_secret_cb, through which a test learns the
    # traffic secrets of a wolfSSL DTLS 1.3 session to decrypt its records.
    CFLAGS="-DWOLFSSL_STATIC_PSK -DHAVE_SECRET_CALLBACK" ./configure --enable-dtls --enable-dtls13 --enable-dtlscid \
        --enable-dtls-mtu --enable-tls13 --enable-psk --enable-aesccm --enable-curve25519 \
        --enable-ed25519 --enable-session-ticket --enable-debug --disable-crypttests
    make -j2
    test -x examples/client/client && test -x examples/server/server
}

echo "build-wolfssl: building wolfSSL $VERSION with DTLS 1.3 in $TREE (about a minute; log $LOG)" >&2
rm -f "$FAILED"
if (build) >"$LOG" 2>&1; then
    echo "recipe $RECIPE" >"$STAMP"
    echo "build-wolfssl: done" >&2
else
    echo "wolfSSL $VERSION build failed; log: $LOG" >"$FAILED"
    echo "build-wolfssl: FAILED (the wolfSSL interop tests will fail); last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi

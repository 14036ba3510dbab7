#!/bin/sh
# Create the virtualenv and install dtlsgate with its test and bench tools, uvloop so the
# tests cover the uvloop event loop too, and aiocoap (extra [coap]) for dtlsgate.coap. (The
# tinydtls peer, extra [interop], is built by `make test` after scripts/install-peers.sh has
# installed its build tools.)
# Usage: sh scripts/bootstrap.sh VENV_DIR
set -eu
venv=${1:-.venv}
python=${PYTHON:-python3}
if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    echo "bootstrap: python3 -m venv failed; installing python3-venv" >&2
    rm -rf "$venv"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[test,bench,fast,coap]"

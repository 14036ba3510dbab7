#!/bin/sh
# The event-loop and command-line tests again, under the newest CPython on this machine that
# is newer than the one `make test` uses (pyenv's versions, or python3.N on PATH), in a venv
# of its own. `pip install dtlsgate` takes any Python from 3.11 on, and asyncio has changed
# under us between releases: from 3.12.1 on, Server.wait_closed waits for every open
# connection (`serve --tls` did not stop on SIGTERM while a client stayed connected), and
# 3.13 runs a loop's ready callbacks in another order (a test's clock moved before the
# server had read the client's last ACK). The whole suite under a second interpreter would
# not fit `make test`'s time; these files are where the interpreter's own behaviour shows.
# No newer CPython here: says so and passes.
# Usage: sh scripts/test-newer-python.sh BASE_PYTHON [VENV_DIR]
set -eu
base_python=${1:-.venv/bin/python}
venv=${2:-.venv-newer}

minor_of() {
    "$1" -c 'import sys; print(sys.version_info[1] if sys.version_info[0] == 3 else -1)' \
        2>/dev/null
}

base=$(minor_of "$base_python")
best=""
best_minor=$base
candidates="${PYENV_ROOT:-$HOME/.pyenv}/versions/3.*/bin/python3"
for minor in 20 19 18 17 16 15 14 13 12; do
    found=$(command -v "python3.$minor" 2>/dev/null) && candidates="$candidates $found"
done
for python in $candidates; do
    [ -x "$python" ] || continue
    minor=$(minor_of "$python") || continue  # a pyenv shim of a version not installed
    # The newest minor, and a full CPython (a venv needs ensurepip).
    if [ "$minor" -gt "$best_minor" ] && "$python" -c 'import ensurepip, ssl' 2>/dev/null; then
        best=$python
        best_minor=$minor
    fi
done
if [ -z "$best" ]; then
    echo "test-newer-python: no CPython newer than 3.$base on this machine; skipped"
    exit 0
fi

if [ "$(minor_of "$venv/bin/python" || true)" != "$best_minor" ] \
    || [ ! -e "$venv/.installed-stamp" ]; then
    rm -rf "$venv"
    PYTHON=$best sh scripts/bootstrap.sh "$venv"
    touch "$venv/.installed-stamp"
fi
echo "test-newer-python: $("$venv/bin/python" -VV | head -1)"
"$venv/bin/pytest" -q -p no:cacheprovider tests/test_interop_tls13.py \
    -k test_serve_stops_on_sigterm_with_connections_open
"$venv/bin/pytest" -q -p no:cacheprovider -m "not interop" \
    tests/test_cli.py tests/test_coap.py tests/test_dtls12_aio.py tests/test_dtls12_cli.py \
    tests/test_dtls12_restart.py tests/test_dtls12_restart_blocking.py tests/test_idle.py \
    tests/test_listener.py tests/test_server_limits.py tests/test_tls13_aio.py

#!/bin/sh
# Installs the reference programs the benchmark measures openclawd against (issue 18): nginx
# (one worker, serving a fixed OpenAI chat completion as upstream and as reference server),
# perf (exact CPU time and context switches per process; flamegraph) and wrk (a C load client).
# Debian packages; run as root (CI does). Idempotent: installs only what is missing.
# Usage: scripts/bench-nginx-install.sh
set -eu
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v perf >/dev/null 2>&1 || missing="$missing linux-perf"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -z "$missing" ]; then
    echo "nginx, perf and wrk already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "need root to install:$missing (apt-get install -y$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own nginx service (port 80) is not wanted: the bench starts nginx with its own
# config on a free loopback port. policy-rc.d keeps the package from starting it.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    made_policy=1
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing || { [ -n "$made_policy" ] && rm -f "$policy"; exit 1; }
[ -n "$made_policy" ] && rm -f "$policy"
if command -v systemctl >/dev/null 2>&1; then systemctl disable nginx >/dev/null 2>&1 || true; fi
echo "installed:$missing"

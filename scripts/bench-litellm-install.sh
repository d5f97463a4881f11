#!/bin/sh
# Installs the LiteLLM proxy (the peer `cargo run --release -p bench -- all` compares openclawd
# with) into a virtualenv under target/. Idempotent: a second run only checks it is there.
# Usage: scripts/bench-litellm-install.sh [VENV_DIR]   (default: target/bench-litellm-venv)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$here/target/bench-litellm-venv"}
if [ -x "$venv/bin/litellm" ] && LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c 'import litellm.proxy.proxy_server' 2>/dev/null; then
    echo "litellm already installed in $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]"
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c "import litellm.proxy.proxy_server"
echo "installed litellm $("$venv/bin/pip" show litellm | sed -n 's/^Version: //p') in $venv"

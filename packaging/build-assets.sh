#!/usr/bin/env bash
# Builds the release binary and everything a package ships besides it, into target/assets/:
# shell completions and man pages (generated from the clap definitions by the binary itself),
# and the packaged systemd user unit (rendered from systemd/openclawd.service).
# Then: `cargo deb --no-build` (Debian), or see homebrew/openclawd.rb.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
bin=target/release/openclawd
out=target/assets
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"

"$bin" completions bash > "$out/completions/openclawd.bash"
"$bin" completions zsh > "$out/completions/_openclawd"
"$bin" completions fish > "$out/completions/openclawd.fish"
"$bin" manpage --dir "$out/man"

# The packaged unit is the same template `openclawd install` renders, made generic: the
# packaged binary, and the env file of whoever enables it (%h = their home; optional, since
# only `openclawd install` writes it).
sed -e 's|{{EXEC_START}}|/usr/bin/openclawd run|' \
    -e 's|{{ENV_FILE}}|-%h/.openclaw/openclawd/service.env|' \
    -e 's|{{WANTED_BY}}|default.target|' \
    -e '/{{USER}}/d' \
    -e 's|^# openclawd, written by `openclawd install`.*|# openclawd user unit (packaged). Enable: systemctl --user enable --now openclawd.service\n# or run `openclawd install`, which writes one carrying your environment (API keys).|' \
    systemd/openclawd.service > "$out/openclawd.service"
if grep -q '{{' "$out/openclawd.service"; then
    echo "unrendered placeholder in $out/openclawd.service" >&2
    exit 1
fi
echo "assets in $out"

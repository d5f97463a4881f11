# Homebrew formula template for openclawd. Fill in url/sha256 (and homepage) for a release;
# everything else is generated from the sources at build time.
class Openclawd < Formula
  desc "Keeps a local LLM stack (Ollama + OpenClaw) running: supervisor and routing gateway"
  homepage "{{HOMEPAGE}}"
  url "{{SOURCE_TARBALL_URL}}"
  sha256 "{{SOURCE_TARBALL_SHA256}}"
  license "MIT"

  depends_on "rust" => :build
  # At run time openclawd needs an `ollama` (the formula or the app); it does not depend on
  # either so users keep the one they have.

  def install
    system "cargo", "install", *std_cargo_args
    # `openclawd completions <shell>`: generated from the clap definitions.
    generate_completions_from_executable(bin/"openclawd", "completions")
    (buildpath/"man").mkpath
    system bin/"openclawd", "manpage", "--dir", buildpath/"man"
    man1.install Dir[buildpath/"man/*.1"]
  end

  def caveats
    <<~EOS
      `openclawd install` runs openclawd as a LaunchAgent (ai.openclaw.openclawd) with the
      environment it needs (API keys, OLLAMA_* and NO_PROXY) in a private 0600 file. Prefer it
      to `brew services start openclawd`: a brew service does not see your shell's variables.
      Use one or the other, not both. `openclawd doctor` checks the whole stack.
    EOS
  end

  service do
    run [opt_bin/"openclawd", "run"]
    keep_alive true
    log_path var/"log/openclawd.log"
    error_log_path var/"log/openclawd.log"
    environment_variables PATH: std_service_path_env
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/openclawd --version")
    plist = shell_output("#{bin}/openclawd install --dry-run --manager launchd")
    assert_match "<key>KeepAlive</key>", plist
    assert_match "openclawd/service.env", plist
    assert_match ".TH openclawd", shell_output("#{bin}/openclawd manpage")
  end
end

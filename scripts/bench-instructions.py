#!/usr/bin/env python3
"""User-space instructions per request of openclawd builds, counted by callgrind (issue 18).

Wall-clock and CPU-time figures on a shared 2-core VM move by ±10 % between runs; an
instruction count does not. This runs each given openclawd binary under
`valgrind --tool=callgrind` against the bench's mock upstream (`target/release/bench mock`),
sends WARMUP requests, switches instrumentation on, sends N requests on one keep-alive
connection, dumps, and prints the instructions (Ir) per request: openclawd's own code, the
allocator and libc — not the kernel. It says which user-space cut helps; `bench cpu` says what
the whole request costs.

  scripts/bench-instructions.py [--n 300] [--stream] [--api chat|ollama|messages]... [--markdown] [LABEL=]BIN...
"""

import argparse
import glob
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"openclawd exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("openclawd was not ready in time")


def send(conn, n, path, body):
    for _ in range(n):
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"{path} answered {r.status}: {data[:300]!r}")


def measure(binary, mock, n, warmup, stream, api):
    home = tempfile.mkdtemp(prefix="openclawd-instr-")
    state = os.path.join(home, ".openclaw")
    os.makedirs(os.path.join(state, "openclawd"))
    model = "{ id: 'fast', name: 'fast', contextWindow: 32768, maxTokens: 4096 }"
    with open(os.path.join(state, "openclaw.json"), "w") as f:
        f.write(
            "{ models: { providers: {\n"
            f"  mock: {{ baseUrl: 'http://{mock}/v1', api: 'openai-completions', apiKey: 'sk-b', models: [ {model} ] }},\n"
            f"  ollama: {{ baseUrl: 'http://{mock}', api: 'ollama', models: [ {model} ] }},\n"
            "} },\n"
            "  agents: { defaults: { model: { primary: 'mock/fast' } } } }\n"
        )
    with open(os.path.join(state, "openclawd", "openclawd.json"), "w") as f:
        f.write("{ ollama: { manage: false } }\n")
    port = free_port()
    out = os.path.join(home, "callgrind.out")
    env = {
        "HOME": home,
        "PATH": os.environ.get("PATH", ""),
        "OPENCLAW_STATE_DIR": state,
        "OPENCLAW_GATEWAY_PORT": str(port),
        "OLLAMA_HOST": mock,
    }
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         binary, "run"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "valgrind.log"), "w"),
    )
    try:
        wait_ready(port, proc)
        model_ref = "ollama/fast" if api == "ollama" else "mock/fast"
        if api == "messages":
            path = "/v1/messages"
            body = json.dumps({"model": "mock/fast", "max_tokens": 64, "stream": stream,
                               "messages": [{"role": "user", "content": "Say something for the benchmark."}]})
        else:
            path = "/v1/chat/completions"
            body = json.dumps({"model": model_ref, "stream": stream,
                               "messages": [{"role": "user", "content": "Say something for the benchmark."}]})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        send(conn, warmup, path, body)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        send(conn, n, path, body)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # The dump taken right after the N requests; the file written at exit holds the shutdown.
    dumps = sorted(glob.glob(out + ".*"))
    if not dumps:
        raise SystemExit(f"callgrind wrote no dump; see {home}/valgrind.log")
    total = 0
    with open(dumps[0]) as f:
        for line in f:
            m = re.match(r"^(summary|totals): (\d+)", line)
            if m:
                total = max(total, int(m.group(2)))
    return total / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+", help="BIN or LABEL=BIN")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--api", action="append", choices=["chat", "ollama", "messages"],
                    help="chat: chat completions → openai-completions (pass-through); "
                         "ollama: → native /api/chat; messages: /v1/messages → openai-completions "
                         "(repeatable; default chat)")
    ap.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    a = ap.parse_args()
    apis = a.api or ["chat"]
    systems = [b.split("=", 1) if "=" in b else (b, b) for b in a.binaries]
    mock_bin = os.path.join(HERE, "target/release/bench")
    mock = subprocess.Popen([mock_bin, "mock"], stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        line = mock.stdout.readline()
        addr = line.strip().rsplit(" ", 1)[-1]
        for label, b in systems:
            row = []
            for api in apis:
                ir = measure(os.path.abspath(b), addr, a.n, a.warmup, a.stream, api)
                row.append(ir)
                if not a.markdown:
                    print(f"{label}\t{api}{' stream' if a.stream else ''}\t{ir:,.0f} instructions/request",
                          flush=True)
            rows.append((label, row))
    finally:
        mock.terminate()
    if a.markdown:
        names = {"chat": "chat completions → `openai-completions`",
                 "ollama": "chat completions → `ollama` native",
                 "messages": "`/v1/messages` → `openai-completions`"}
        print("## 9. Instructions per request (callgrind)\n")
        print("Wall-clock and CPU time move by ±10 % between runs on this shared VM; an instruction "
              "count does not. `scripts/bench-instructions.py` runs each build under "
              "`valgrind --tool=callgrind` against the mock, sends "
              f"{a.warmup} warm-up requests, then counts the instructions of the next {a.n} "
              f"(one keep-alive connection, {'streaming' if a.stream else 'non-streaming'}): "
              "openclawd's code, the allocator and libc in user space — not the kernel, whose share "
              "§7's CPU time includes. Same run as the rest of this file.\n")
        print("| build | " + " | ".join(names[x] for x in apis) + " |")
        print("|---|" + "--:|" * len(apis))
        first = rows[0][1]
        for label, row in rows:
            cells = []
            for i, ir in enumerate(row):
                rel = "" if row is first else f" ({(ir / first[i] - 1) * 100:+.0f} %)"
                cells.append(f"{ir:,.0f}{rel}")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    sys.exit(main())

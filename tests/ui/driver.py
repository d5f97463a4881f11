"""A thin WebDriver bridge for tests/ui.rs: headless Debian Chromium driven by selenium.

Reads one JSON command per line on stdin and answers one JSON line on stdout:
{"ok": true, "value": ...} or {"ok": false, "error": "..."}. The scenario lives in Rust; this
only does what a person's browser does and reports what it saw.
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

driver = None


def start(cmd):
    global driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = cmd.get("chromium", "/usr/bin/chromium")
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-default-apps",
        "--no-proxy-server", "--hide-scrollbars",
        "--window-size=%d,%d" % (cmd.get("width", 1280), cmd.get("height", 900)),
    ]:
        opts.add_argument(arg)
    if cmd.get("dark"):
        opts.add_argument("--force-dark-mode")
        opts.add_argument("--blink-settings=preferredColorScheme=0")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver: selenium must not look for (or download) one by itself.
    driver = webdriver.Chrome(service=Service(cmd.get("chromedriver", "/usr/bin/chromedriver")), options=opts)
    driver.set_script_timeout(10)
    return driver.capabilities.get("browserVersion")


def wait(cmd):
    deadline = time.monotonic() + cmd.get("timeout", 5)
    last = None
    while True:
        last = driver.execute_script(cmd["script"], *cmd.get("args", []))
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %ss waiting for: %s (last value %r)"
                               % (cmd.get("timeout", 5), cmd.get("what", cmd["script"]), last))
        time.sleep(0.05)


def screenshot(cmd):
    w = driver.execute_script("return window.innerWidth")
    h = driver.execute_script("return document.documentElement.scrollHeight")
    size = driver.get_window_size()
    driver.set_window_size(size["width"], min(h + (size["height"] - driver.execute_script("return window.innerHeight")), 6000))
    time.sleep(0.3)
    driver.save_screenshot(cmd["path"])
    driver.set_window_size(size["width"], size["height"])
    return [w, h]


def network(_cmd):
    """Every request the page made since the last call: URL, method, and request headers."""
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            req = msg["params"]["request"]
            out.append({"url": req["url"], "method": req["method"], "headers": req.get("headers", {})})
    return out


def keys(cmd):
    """Presses Tab `count` times from the top and reports what took the focus each time."""
    body = driver.find_element(By.TAG_NAME, "body")
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0,0)")
    seen = []
    for _ in range(cmd["count"]):
        body.send_keys(Keys.TAB) if not seen else driver.switch_to.active_element.send_keys(Keys.TAB)
        seen.append(driver.execute_script(
            "const e=document.activeElement; return e ? (e.tagName.toLowerCase() + (e.id ? '#'+e.id : '') + ' ' + (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0,40)) : null"))
    return seen


def handle(cmd):
    c = cmd["cmd"]
    if c == "start":
        return start(cmd)
    if c == "get":
        driver.get(cmd["url"])
        return driver.current_url
    if c == "js":
        return driver.execute_script(cmd["script"], *cmd.get("args", []))
    if c == "wait":
        return wait(cmd)
    if c == "screenshot":
        return screenshot(cmd)
    if c == "console":
        return [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
    if c == "network":
        return network(cmd)
    if c == "type":
        el = driver.find_element(By.CSS_SELECTOR, cmd["selector"])
        el.clear()
        el.send_keys(cmd["text"] + ("\n" if cmd.get("enter") else ""))
        return True
    if c == "size":
        driver.set_window_size(cmd["width"], cmd["height"])
        return driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
    if c == "tab":
        return keys(cmd)
    if c == "quit":
        driver.quit()
        return True
    raise ValueError("unknown command %r" % c)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = {"ok": True, "value": handle(json.loads(line))}
        except Exception as e:  # every failure goes back to the test, which says what failed
            answer = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    if driver is not None:
        try:
            driver.quit()
        except Exception:
            pass


if __name__ == "__main__":
    main()

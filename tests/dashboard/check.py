#!/usr/bin/env python3
"""Drives the minikv dashboard in headless Chromium (WebDriver, selenium) for tests/dashboard.rs.

Usage: check.py SCENARIO JSON-ARGS

Scenarios (each prints "ok: ..." lines and exits 0, or fails with a message and exit 1):
  cluster   the page loads without console errors, shows every node up, the ops chart rises
            after a redis-benchmark burst, the key browser finds a key set with redis-cli and
            shows its TTL and value; the slot map is drawn for a replicated cluster.
  kill      every node is up, then the node with pid `pid` is killed (SIGKILL) and its row
            must read "down" within 5 s.
  password  the page shows the sign-in form, the JSON API answers 401 without a session, and
            after signing in the nodes are shown and the API answers.
  redis     a real redis-server: the node is up, its version names redis, the key browser
            finds a key.

Screenshots go to args["shots"]. Chromium and chromedriver come from Debian's packages
(/usr/bin/chromium, /usr/bin/chromedriver); nothing is downloaded.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WAIT = 20.0


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def find_program(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    fail("none of %s is installed: run ./scripts/test.sh" % ", ".join(names))


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = find_program("chromium", "chromium-browser", "google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1800", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=find_program("chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def wait_for(what, check, timeout=WAIT, interval=0.2):
    """Calls check() until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # a stale element while the page re-renders: try again
            last_error = e
        time.sleep(interval)
    fail("timed out after %.0f s waiting for %s%s" % (
        timeout, what, " (last error: %s)" % last_error if last_error else ""))


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def assert_no_console_errors(driver):
    errors = console_errors(driver)
    if errors:
        fail("the browser console has errors: %s" % json.dumps(errors, indent=1))
    print("ok: no console errors")


def node_statuses(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, "#nodes tbody tr")
    return {row.get_attribute("data-addr"): row.get_attribute("data-status") for row in rows}


def wait_all_up(driver, servers):
    def all_up():
        statuses = node_statuses(driver)
        return all(statuses.get(s) == "up" for s in servers)
    wait_for("every node shown up (%s)" % ", ".join(servers), all_up)
    print("ok: every node shown up: %s" % ", ".join(servers))


def chart_figure(driver, chart, attribute):
    text = driver.find_element(By.ID, chart).get_attribute(attribute)
    return float(text) if text else None


def shoot(driver, shots, name):
    os.makedirs(shots, exist_ok=True)
    path = os.path.join(shots, name + ".png")
    driver.save_screenshot(path)
    print("ok: screenshot " + path)


def redis_cli(port, *args, password=None):
    command = [find_program("redis-cli"), "-p", str(port)]
    if password:
        command += ["--no-auth-warning", "-a", password]
    out = subprocess.run(command + list(args), capture_output=True, text=True, timeout=WAIT)
    if out.returncode != 0:
        fail("redis-cli %s failed: %s" % (" ".join(args), out.stderr))
    return out.stdout.strip()


def browse_key(driver, pattern, key):
    """Scans for `pattern` in the key browser and opens `key`; returns its row's TTL text."""
    field = driver.find_element(By.ID, "scan-pattern")
    field.clear()
    field.send_keys(pattern)
    driver.find_element(By.ID, "scan-button").click()

    # Each step finds the row again: a row found before a re-render is stale afterwards.
    def row():
        for r in driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr"):
            if r.find_element(By.CSS_SELECTOR, "td .mono").text == key:
                return r
        return None

    def ttl_text():
        found = row()
        return found and (found.find_element(By.CSS_SELECTOR, "td.ttl").text,)

    def click():
        found = row()
        return found and (found.click() or True)
    (ttl,) = wait_for("key %r in the key browser" % key, ttl_text)
    wait_for("a click on key %r" % key, click)
    wait_for("the key's details", lambda: driver.find_element(By.ID, "detail-key").text == key)
    return ttl


def open_page(driver, url):
    driver.get(url)
    wait_for("the page script to start", lambda: driver.execute_script(
        "return document.readyState === 'complete'"))


def scenario_cluster(driver, args):
    url, servers, port, shots = args["url"], args["servers"], args["ports"][0], args["shots"]
    open_page(driver, url)
    wait_all_up(driver, servers)
    wait_for("the live feed", lambda: driver.find_element(By.ID, "live").get_attribute(
        "data-state") == "live")

    # Some keys of every type, for the key browser (and the screenshots).
    redis_cli(port, "SET", "dash:greeting", "hello from redis-cli", "EX", "300")
    redis_cli(port, "HSET", "dash:user:1", "name", "Ada", "lang", "<script>alert(1)</script>")
    redis_cli(port, "RPUSH", "dash:queue", "one", "two", "three")
    redis_cli(port, "SADD", "dash:tags", "red", "green")
    redis_cli(port, "ZADD", "dash:scores", "1.5", "ada", "3", "grace")

    # The ops chart rises after a burst of traffic.
    wait_for("the ops chart to have figures",
             lambda: chart_figure(driver, "chart-ops", "data-latest") is not None)
    before = chart_figure(driver, "chart-ops", "data-latest")
    benchmark = [find_program("redis-benchmark"), "-p", str(port), "-q", "-n", "20000",
                 "-c", "4", "-t", "get"]
    out = subprocess.run(benchmark, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail("redis-benchmark failed: " + out.stderr)
    peak = wait_for("the ops chart to rise above 100/s (it read %s before)" % before,
                    lambda: (chart_figure(driver, "chart-ops", "data-peak") or 0) > 100
                    and chart_figure(driver, "chart-ops", "data-peak"))
    print("ok: the ops chart rose from %s to a peak of %.0f ops/s" % (before, peak))

    if args.get("replicated"):
        wait_for("the shard table", lambda: len(driver.find_elements(
            By.CSS_SELECTOR, "#shards tbody tr")) >= 1 and driver.find_element(
            By.ID, "slotmap-box").is_displayed())
        print("ok: the shards and the slot map are shown")

    shoot(driver, shots, "cluster-overview")

    ttl = browse_key(driver, "dash:*", "dash:greeting")
    if not (ttl.endswith(" s") or ttl.endswith(" min")):
        fail("the key's TTL reads %r, expected seconds or minutes" % ttl)
    value = wait_for("the string value", lambda: driver.find_element(
        By.CSS_SELECTOR, "#detail-value pre").text)
    if value != "hello from redis-cli":
        fail("the value reads %r" % value)
    meta = driver.find_element(By.ID, "detail-meta").text
    if "TTL" not in meta or "no TTL" in meta:
        fail("the key's details do not show its TTL: %r" % meta)
    print("ok: the key browser shows dash:greeting with TTL %s" % ttl)

    # A hash whose value looks like markup is shown as text.
    browse_key(driver, "dash:user:*", "dash:user:1")
    cells = wait_for("the hash's fields", lambda: [c.text for c in driver.find_elements(
        By.CSS_SELECTOR, "#detail-value td")])
    if "<script>alert(1)</script>" not in cells:
        fail("the hash's value is not shown as text: %r" % cells)
    print("ok: a value that looks like HTML is shown as text")
    driver.execute_script("document.getElementById('keys-section').scrollIntoView()")
    shoot(driver, shots, "cluster-keys")

    # Setting a TTL and deleting go through the confirm dialog, then reach the node.
    browse_key(driver, "dash:queue", "dash:queue")
    driver.find_element(By.ID, "detail-ttl").send_keys("77")
    driver.find_element(By.ID, "detail-expire").click()
    wait_for("the confirm dialog", lambda: driver.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-cancel").click()
    if redis_cli(port, "TTL", "dash:queue") != "-1":
        fail("cancelling the dialog still set a TTL")
    driver.find_element(By.ID, "detail-expire").click()
    wait_for("the confirm dialog", lambda: driver.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-ok").click()
    wait_for("the TTL to be set", lambda: 0 < int(redis_cli(port, "TTL", "dash:queue")) <= 77)
    driver.find_element(By.ID, "detail-delete").click()
    wait_for("the confirm dialog", lambda: driver.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-ok").click()
    wait_for("the key to be deleted", lambda: redis_cli(port, "EXISTS", "dash:queue") == "0")
    wait_for("the key's row to go", lambda: not driver.find_elements(
        By.CSS_SELECTOR, "#keys tbody tr[data-key]"))
    print("ok: a TTL set and a key deleted from the page, each after confirming")
    assert_no_console_errors(driver)


def scenario_kill(driver, args):
    url, servers, shots = args["url"], args["servers"], args["shots"]
    victim = args["victim"]
    open_page(driver, url)
    wait_all_up(driver, servers)
    os.kill(args["pid"], signal.SIGKILL)
    killed = time.monotonic()
    wait_for("%s to be shown down" % victim,
             lambda: node_statuses(driver).get(victim) == "down", timeout=5.0, interval=0.1)
    took = time.monotonic() - killed
    print("ok: %s shown down %.1f s after SIGKILL" % (victim, took))
    others = [s for s in servers if s != victim]
    statuses = node_statuses(driver)
    if any(statuses.get(s) != "up" for s in others):
        fail("the other nodes should stay up: %r" % statuses)
    shoot(driver, shots, "node-down")
    assert_no_console_errors(driver)


def http_status(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def scenario_password(driver, args):
    url, servers, shots, password = args["url"], args["servers"], args["shots"], args["password"]
    for path in ("api/keys?node=0", "api/events", "api/slowlog?node=0"):
        status = http_status(url + path)
        if status != 401:
            fail("GET /%s without a session answered %d, expected 401" % (path, status))
    print("ok: the API answers 401 without a session")
    open_page(driver, url)
    form = wait_for("the sign-in form", lambda: driver.find_element(By.ID, "signin").is_displayed()
                    and driver.find_element(By.ID, "signin-form"))
    if driver.find_element(By.ID, "main").is_displayed():
        fail("the dashboard is shown before signing in")
    if driver.find_elements(By.CSS_SELECTOR, "#nodes tbody tr"):
        fail("node rows exist before signing in")
    shoot(driver, shots, "sign-in")
    driver.find_element(By.ID, "password").send_keys(password)
    form.find_element(By.ID, "signin-button").click()
    wait_all_up(driver, servers)
    cookie = driver.get_cookie("minikv_session")
    if not cookie or not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
        fail("the session cookie is not HttpOnly and SameSite=Strict: %r" % cookie)
    # The browser's session works for the API (read from the page itself).
    status = driver.execute_script(
        "return fetch('/api/keys?node=0').then(r => r.status)")
    if status != 200:
        fail("the API answered %r after signing in" % status)
    print("ok: signed in, the nodes are shown and the API answers")
    shoot(driver, shots, "signed-in")
    assert_no_console_errors(driver)


def scenario_redis(driver, args):
    url, servers, port, shots = args["url"], args["servers"], args["ports"][0], args["shots"]
    redis_cli(port, "SET", "real:redis", "yes", "EX", "600")
    open_page(driver, url)
    wait_all_up(driver, servers)
    # The table re-renders on every refresh: read the note again until it says redis (an
    # element found just before a refresh is stale by the time its text is asked for).
    def redis_version():
        text = driver.find_element(By.CSS_SELECTOR, "#nodes tbody tr td .note").text
        return text if text.startswith("redis ") else None
    version = wait_for("the node's version note to name redis", redis_version)
    ttl = browse_key(driver, "real:*", "real:redis")
    if not ttl.endswith(" min"):
        fail("the TTL reads %r" % ttl)
    print("ok: a real redis-server (%s) is shown, its key found with TTL %s" % (version, ttl))
    shoot(driver, shots, "redis-server")
    assert_no_console_errors(driver)


SCENARIOS = {
    "cluster": scenario_cluster,
    "kill": scenario_kill,
    "password": scenario_password,
    "redis": scenario_redis,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        fail("usage: check.py {%s} JSON-ARGS" % "|".join(SCENARIOS))
    args = json.loads(sys.argv[2])
    driver = start_browser()
    try:
        SCENARIOS[sys.argv[1]](driver, args)
    except SystemExit:
        try:
            shoot(driver, args["shots"], "failure-" + sys.argv[1])
        except Exception:
            pass
        raise
    finally:
        driver.quit()
    print("ok: scenario %s passed" % sys.argv[1])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Browser tests of the coordinators' console (issue 13).

Starts the real build/tocsin on a free loopback port with a temporary config,
a small loopback Twilio + SendGrid emulator (this file: the C++ emulators live
inside the C++ test binary), and Debian's headless chromium through
chromium-driver + python3-selenium. Exits 77 (CTest SKIP_RETURN_CODE) only
when chromium, its driver or selenium is missing (a developer machine); CI
installs them (scripts/install-deps) so the test runs there.

    tests/browser/console_test.py BUILD_DIR [--screenshots DIR]
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_admin_steps  # noqa: E402  (the admin's subscriber screens)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tocsin_daemon  # noqa: E402 (after the path it lives on)

# 77 is CTest's "skipped"; where every tool must be there (.ci/run sets
# TOCSIN_NO_SKIP=1, having installed them), a missing one is a failure, so
# that a green CI run always means this test ran.
SKIP = 1 if os.environ.get("TOCSIN_NO_SKIP") else 77
DEADLINE = time.monotonic() + 280  # the whole test stays under 5 minutes

if "/usr/lib/python3/dist-packages" not in sys.path:  # Debian's python3-selenium under another python3
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    print("SKIP: python3-selenium is not installed (scripts/install-deps)")
    sys.exit(SKIP)
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print("SKIP: chromium / chromium-driver are not installed (scripts/install-deps)")
    sys.exit(SKIP)

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SHOTS = None
if "--screenshots" in sys.argv:
    SHOTS = os.path.abspath(sys.argv[sys.argv.index("--screenshots") + 1])
TOCSIN = os.path.join(BUILD, "tocsin")
AXE = next((p for p in (os.path.join(b, "npm", "node_modules", "axe-core", "axe.min.js") for b in
            (BUILD, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")))
            if os.path.exists(p)), "")
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"  # 32 hex digits, as check-config wants
ADMIN = "browser-test-admin-token-0123456789"
PASS = {"ana": "ana passphrase 2026", "ben": "ben passphrase 2026", "pat": "pat passphrase 2026",
        "ops": "ops passphrase 2026", "quin": "quin passphrase 2026"}
XSS = '<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">'

failures = []
passed = [0]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if cond:
        passed[0] += 1
    else:
        failures.append(what)
    return cond


def wait_for(pred, what, timeout=15.0):
    end = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # the page may be mid-navigation
            pass
        time.sleep(0.1)
    check(False, "timed out waiting: " + what)
    raise SystemExit(report())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- the provider emulator: Twilio Messages.json and SendGrid mail/send ----
class Emulator(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), EmuHandler)
        self.sms = []    # (time, to, body, sid)
        self.email = []  # (time, to, subject, body)
        self.lock = threading.Lock()


class EmuHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.time()
        if self.path.endswith("/Messages.json"):
            f = urllib.parse.parse_qs(body.decode())
            with self.server.lock:
                sid = "SM%030d" % (len(self.server.sms) + 1)
                self.server.sms.append((now, f["To"][0], f["Body"][0], sid))
            out = json.dumps({"sid": sid, "status": "queued"}).encode()
            self.send_response(201)
        elif self.path == "/v3/mail/send":
            j = json.loads(body)
            with self.server.lock:
                for p in j["personalizations"]:
                    self.server.email.append((now, p["to"][0]["email"], j["subject"], j["content"][0]["value"]))
            out = b""
            self.send_response(202)
            self.send_header("X-Message-Id", "msg%d" % len(self.server.email))
        else:
            out = b"{}"
            self.send_response(404)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def totp(secret_b32, step):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def report():
    print("%d passed, %d failed" % (passed[0], len(failures)))
    return 1 if failures else 0


def main():
    tmp = tempfile.mkdtemp(prefix="tocsin-browser-")
    emu = Emulator()
    threading.Thread(target=emu.serve_forever, daemon=True).start()
    emu_url = "http://127.0.0.1:%d" % emu.server_address[1]
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    subprocess.run([TOCSIN, "keys", "generate", os.path.join(tmp, "tocsin.key")], check=True,
                   stdout=subprocess.DEVNULL)
    secret = "whsec_" + base64.b64encode(b"browser-test-secret-0123456789").decode()
    config = {
        "server": {"listen": "127.0.0.1:%d" % port, "public_url": base},
        "storage": {"sqlite": {"path": os.path.join(tmp, "tocsin.db")},
                    "key_file": os.path.join(tmp, "tocsin.key")},
        "coordinators": [
            {"name": "la-hotline", "secret": secret, "areas": ["la"], "approval": "two_person"},
            {"name": "pdx-hotline", "secret": "whsec_" + base64.b64encode(b"pdxtest-test-secret-0123456789").decode(),
             "areas": ["pdx"]},
        ],
        "admin": {"tokens": [ADMIN]},
        "gateways": [
            {"name": "twilio", "type": "twilio", "channel": "sms", "base_url": emu_url,
             "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": AUTH_TOKEN, "from": "+12135550100", "rate_per_s": 50},
            {"name": "sendgrid", "type": "sendgrid", "channel": "email", "base_url": emu_url,
             "api_key": "SG.test-key.test-secret", "from": "alerts@example.org"},
        ],
        "groups": [
            {"name": "la-responders", "match": {"areas": ["la"]}, "channels": ["sms", "email"], "drills": True},
            {"name": "la-east", "match": {"areas": ["la/east-la"]}, "channels": ["sms"]},
            {"name": "pdx-responders", "match": {"areas": ["pdx"]}, "channels": ["sms"]},
            # Held until two reporters: pdx has one coordinator, so with the
            # console that means two of its people (pat and quin).
            {"name": "pdx-wide", "match": {"areas": ["pdx"], "min_corroboration": 2}, "channels": ["sms"]},
        ],
        # One shape (areas as shapes): "la" as a 60-km circle, so the console
        # shows the report's point on it.
        "areas": {"circles": [{"name": "la", "center": {"lat": 34.05, "lon": -118.25},
                               "radius_m": 60000}]},
        "console": {"enabled": True, "events": ["enforcement_activity", "checkpoint"],
                    "languages": ["en", "es"], "draft_flag_after_s": 10},
    }
    cfg_path = os.path.join(tmp, "tocsin.json")
    with open(cfg_path, "w") as f:
        json.dump(config, f)
    out = subprocess.run([TOCSIN, "check-config", "--config", cfg_path], capture_output=True, text=True)
    check(out.returncode == 0, "check-config accepts the console config: " + out.stdout.strip())

    links = {}
    for name, coord in (("ana", "la-hotline"), ("ben", "la-hotline"), ("pat", "pdx-hotline"),
                        ("quin", "pdx-hotline"), ("ops", "")):
        role = ["--role", "coordinator", "--coordinator", coord] if coord else ["--role", "admin"]
        r = subprocess.run([TOCSIN, "users", "add", "--config", cfg_path, name] + role,
                           capture_output=True, text=True)
        m = re.search(r"(http://\S+/console/enrol/[0-9a-f]{64})", r.stdout)
        check(r.returncode == 0 and m, "users add %s prints an enrolment link" % name)
        links[name] = m.group(1)
    conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
    row = conn.execute("SELECT enrol_hash FROM console_users WHERE name='ana'").fetchone()
    check(row and row[0] != links["ana"].rsplit("/", 1)[1], "only the enrolment token's hash is stored")
    conn.close()

    try:
        with tocsin_daemon.running(TOCSIN, cfg_path, tmp, base):
            run(base, cfg_path, config, links, emu, tmp)
        https_cookies(emu_url)
    finally:
        if failures:
            print("--- daemon log tail ---")
            print(tocsin_daemon.log_tail(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    return report()


def admin(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def safety_steps(base):
    """tocsin_safety_steps_total by step, from /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^tocsin_safety_steps_total\{step="(\w+)"\} (\S+)$', text, re.M)}


def raw(base, method, path, cookie="", headers=None, body=b""):
    h = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    req = urllib.request.Request(base + path, method=method, data=body if method == "POST" else None, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def twilio_post(base, path, fields):
    url = base + path
    data = "".join(k + fields[k] for k in sorted(fields))
    sig = base64.b64encode(hmac.new(AUTH_TOKEN.encode(), (url + data).encode(), hashlib.sha1).digest()).decode()
    req = urllib.request.Request(url, method="POST", data=urllib.parse.urlencode(fields).encode(),
                                 headers={"X-Twilio-Signature": sig,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a):
        return None


def fetch(url, cookie="", data=None, headers=None):
    """One request, redirects not followed: (status, headers, body)."""
    h = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=h, method="POST" if data is not None else "GET")
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def blake(token):
    """What the database keeps of a token (console_crypto.h token_hash)."""
    return hashlib.blake2b(token.encode(), digest_size=32).hexdigest()


def pre_session(base):
    """GET /console/login as a script: the pre-session cookie it sets and
    the token in its form, for POSTs the way the page makes them."""
    with urllib.request.urlopen(base + "/console/login", timeout=10) as r:
        cookie = r.headers.get("Set-Cookie", "").split(";")[0]
        token = re.search(r'name="pre" value="([^"]+)"', r.read().decode()).group(1)
    return cookie, token


def db_counts(config):
    """Rows of the tables a login or enrolment writes."""
    conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
    try:
        return {t: conn.execute("SELECT count(*) FROM " + t).fetchone()[0]
                for t in ("sessions", "audit", "login_throttle")}
    finally:
        conn.close()


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,900",
              "--user-data-dir=" + tempfile.mkdtemp(prefix="tocsin-chromium-")):
        o.add_argument(a)
    o.add_experimental_option("prefs", {"intl.accept_languages": "en"})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    return d


class Screens:
    def __init__(self, d):
        self.d = d
        self.axe = open(AXE).read() if os.path.exists(AXE) else None
        self.seen = []

    def look(self, name):
        """axe-core on this screen, and screenshots at 1280 and 375 px."""
        d = self.d
        self.seen.append(name)
        if self.axe:
            d.execute_script(self.axe)
            res = d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
                "v => [v.id, v.impact, v.nodes.length])));")
            bad = [v for v in res if v[1] in ("serious", "critical")]
            check(not bad, "axe: no serious or critical violation on %s %s" % (name, bad or ""))
        else:
            check(False, "axe-core is installed in build/npm (scripts/install-deps)")
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            for w in (1280, 375):
                d.set_window_size(w, 900)
                d.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
                h = d.execute_script("return document.documentElement.scrollHeight")
                d.set_window_size(w, min(max(h, 600), 2400))
                d.save_screenshot(os.path.join(SHOTS, "%s-%d.png" % (name, w)))
            d.set_window_size(1280, 900)
        if w375_overflow(d):
            check(False, "%s fits a 375-px screen without sideways scrolling" % name)


def w375_overflow(d):
    d.set_window_size(375, 800)
    over = d.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
    d.set_window_size(1280, 900)
    return over


def go(d, element):
    """Clicks `element` and waits until the next page has replaced this one."""
    from selenium.common.exceptions import WebDriverException
    old = d.find_element(By.TAG_NAME, "html")
    element.click()
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            old.is_enabled()
        except WebDriverException:  # stale, or "does not belong to the document": replaced
            return
        time.sleep(0.05)
    check(False, "the click led to a new page")


def cookie_header(d):
    return "; ".join("%s=%s" % (c["name"], c["value"]) for c in d.get_cookies())


def login(d, base, name, step_offset=1, code=None):
    d.delete_all_cookies()
    d.get(base + "/console/login")
    d.find_element(By.ID, "name").send_keys(name)
    d.find_element(By.ID, "passphrase").send_keys(PASS[name])
    if code is None:
        code = totp(SECRETS[name], int(time.time()) // 30 + step_offset)
    d.find_element(By.ID, "code").send_keys(code)
    go(d, d.find_element(By.CSS_SELECTOR, "form.stack button"))


SECRETS = {}
BEN_COOKIE = [""]


def run(base, cfg_path, config, links, emu, tmp):
    subs = [
        {"name": "Ann", "phone": "+12135550001", "language": "en", "groups": ["la-responders"], "channels": ["sms"]},
        {"name": "Beto", "phone": "+12135550002", "email": "beto@example.org", "language": "es",
         "groups": ["la-responders"], "channels": ["sms", "email"]},
        {"name": "Pia", "phone": "+15035550003", "language": "en", "groups": ["pdx-responders"], "channels": ["sms"]},
        {"name": "Quy", "phone": "+15035550004", "language": "en", "groups": ["pdx-wide"], "channels": ["sms"]},
    ]
    for s in subs:
        admin(base, "POST", "/v1/subscribers", s)
    d = browser()
    sc = Screens(d)
    try:
        # ---- enrol (passphrase + TOTP) ----
        for name in ("ana", "ben", "pat", "quin", "ops"):
            d.get(links[name])
            secret = d.find_element(By.ID, "totp-secret").text
            check(len(d.find_elements(By.CSS_SELECTOR, ".qr svg path")) == 1, "enrolment shows a QR code")
            SECRETS[name] = secret
            if name == "ana":
                sc.look("enrol")
            d.find_element(By.ID, "passphrase").send_keys(PASS[name])
            d.find_element(By.ID, "passphrase2").send_keys(PASS[name])
            d.find_element(By.ID, "code").send_keys(totp(secret, int(time.time()) // 30))
            go(d, d.find_element(By.CSS_SELECTOR, "form.stack button"))
            check("ready" in d.find_element(By.TAG_NAME, "main").text, "%s enrolled" % name)
        d.get(links["ana"])
        check("not valid" in d.page_source, "an enrolment link works once")

        # ---- login: a wrong code is refused, the right one lets in ----
        login(d, base, "ana", code=totp(SECRETS["ana"], int(time.time()) // 30 - 5))
        check("Wrong name, passphrase or code" in d.page_source and not d.get_cookie("tocsin_session"),
              "a wrong TOTP code is refused")
        sc.look("login")
        login(d, base, "ana")
        check(d.current_url.rstrip("/").endswith("/console"), "ana logs in with passphrase + TOTP")
        c = d.get_cookie("tocsin_session")
        check(c and c["httpOnly"] and c.get("sameSite") == "Strict", "session cookie is HttpOnly, SameSite=Strict")
        st, body = raw(base, "GET", "/console/", cookie_header(d))
        sc.look("board-empty")

        # ---- ana drafts an alert (two-person rule) ----
        d.get(base + "/console/reports/new")
        d.find_element(By.CSS_SELECTOR, "#area option[value='la/east-la']").click()
        d.find_element(By.ID, "lat").send_keys("34.0339")
        d.find_element(By.ID, "lon").send_keys("-118.2107")
        d.find_element(By.ID, "loc_desc").send_keys("1st St & Soto St")
        d.find_element(By.ID, "headline_en").send_keys("ICE vehicles at 1st & Soto")
        d.find_element(By.ID, "headline_es").send_keys("Vehículos de ICE en 1st y Soto")
        d.find_element(By.ID, "instruction_en").send_keys("Legal observers needed")
        wait_for(lambda: "segment" in d.find_element(By.ID, "preview-out").text or
                 "sms · es" in d.find_element(By.ID, "preview-out").text, "live SMS preview")
        pv = d.find_element(By.ID, "preview-out").text
        check("ICE vehicles at 1st & Soto" in pv and "Vehículos de ICE" in pv and "GSM-7" in pv,
              "preview shows each language's SMS with its encoding")
        check("Σ 3" in pv, "preview's dry run counts 2 SMS + 1 email recipients")
        groups = d.find_element(By.ID, "preview-groups").text
        check(all(r in groups for r in ("la-responders sms en 1", "la-responders sms es 1",
                                        "la-responders email es 1", "la-east - - 0")),
              "preview lists every group with its recipients per channel and language: %r" % groups)
        wait_for(lambda: d.find_elements(By.ID, "preview-map"), "preview shows the area map")
        check(d.execute_script("return document.getElementById('preview-map').naturalWidth") > 0,
              "the preview's map (an SVG image of the shapes and the point) loads")
        sc.look("report-form")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        check("Saved as a draft" in d.page_source, "a two-person alert becomes a draft")
        go(d, d.find_element(By.LINK_TEXT, "Open"))
        draft_url = d.current_url
        groups = d.find_element(By.ID, "preview-groups").text
        check("la-responders email es 1" in groups and "la-east - - 0" in groups,
              "the draft page shows the same per-group preview: %r" % groups)
        sc.look("draft")
        go(d, d.find_element(By.ID, "approve"))
        check(d.find_element(By.TAG_NAME, "h1").text == "Refused" and "You wrote this draft" in d.page_source,
              "the author's own approval is refused")
        st, _ = raw(base, "POST", urllib.parse.urlparse(draft_url).path + "/approve", cookie_header(d),
                    {"Origin": base}, b"csrf=" + d.find_element(By.ID, "main").get_attribute("data-csrf").encode())
        check(st == 403, "own approval is 403")
        check(not emu.sms, "nothing was sent before the approval")

        # an XSS draft, to see it shown as text
        d.get(base + "/console/reports/new")
        d.find_element(By.ID, "headline_en").send_keys(XSS)
        wait_for(lambda: "<script>" in d.find_element(By.ID, "preview-out").text, "XSS preview as text")
        check(not d.find_elements(By.CSS_SELECTOR, "#preview-out img, #preview-out script"),
              "live preview renders the headline as text")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        go(d, d.find_element(By.LINK_TEXT, "Open"))
        xss_draft = d.current_url
        check(XSS in d.find_element(By.TAG_NAME, "pre").text and d.execute_script("return window.__xss") is None,
              "a headline with <script> and an onerror attribute is shown as text and runs nothing")

        # a drill draft, for another hotline's refused approval and the draft screen's DRILL mark
        st, body = raw(base, "POST", "/console/reports", cookie_header(d), {"Origin": base}, urllib.parse.urlencode({
            "csrf": d.find_element(By.ID, "main").get_attribute("data-csrf"), "form_id": "drill-draft",
            "msg_type": "alert", "status": "exercise", "event": "checkpoint", "severity": "moderate",
            "area": "la", "observed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "headline_en": "Drill: checkpoint"}).encode())
        m = re.search(r'href="(/console/drafts/\d+)"', body)
        check(st == 201 and m, "a drill alert of a two-person hotline is saved as a draft (%d)" % st)
        drill_draft = m.group(1) if m else "/console/drafts/0"

        # ---- cross-site POST: refused, changes nothing ----
        before = len(admin(base, "GET", "/v1/incidents")["incidents"])
        st, _ = raw(base, "POST", "/console/reports", cookie_header(d), {"Origin": "http://evil.example"},
                    b"msg_type=alert&status=actual&event=enforcement_activity&severity=severe&area=la"
                    b"&observed_at=2026-01-01T00:00:00Z&headline_en=fake")
        st2, _ = raw(base, "POST", urllib.parse.urlparse(draft_url).path + "/reject", cookie_header(d),
                     {"Origin": base, "Sec-Fetch-Site": "same-origin"}, b"")
        check(st == 403 and st2 == 403, "cross-site POST and a POST without a CSRF token are refused (%d, %d)" % (st, st2))
        check(len(admin(base, "GET", "/v1/incidents")["incidents"]) == before, "the refused POSTs changed nothing")

        # ---- login and enrolment POSTs need the pre-session token ----
        before_db = db_counts(config)
        good = urllib.parse.urlencode({"name": "quin", "passphrase": PASS["quin"],
                                       "code": totp(SECRETS["quin"], int(time.time()) // 30 + 1)})
        cookie, token = pre_session(base)
        forged = "a" * 32 + "." + "0" * 64
        tries = [raw(base, "POST", "/console/login", "", {"Origin": base}, good.encode()),
                 raw(base, "POST", "/console/login", cookie, {"Origin": base}, good.encode()),
                 raw(base, "POST", "/console/login", "tocsin_pre=" + forged, {"Origin": base},
                     ("pre=" + forged + "&" + good).encode()),
                 raw(base, "POST", "/console/enrol", "", {"Origin": base},
                     b"token=" + links["quin"].rsplit("/", 1)[1].encode() + b"&passphrase=x")]
        check([t[0] for t in tries] == [403] * 4,
              "a login (right passphrase and code) or enrolment POST without a valid pre-session token "
              "is refused (%s)" % [t[0] for t in tries])
        check(db_counts(config) == before_db, "the refused logins stored nothing (no session, audit or throttle row)")
        # A switch of language from another site sets nothing; from our pages it does.
        for site, want in (("cross-site", False), ("same-origin", True)):
            _, h, _ = fetch(base + "/console/lang?l=es", headers={"Sec-Fetch-Site": site})
            check(("tocsin_lang=es" in h.get("Set-Cookie", "")) == want, "a %s language switch %s the cookie" %
                  (site, "sets" if want else "does not set"))

        # ---- a point 300 km from its named area: refused, nothing stored ----
        now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        csrf = d.find_element(By.ID, "main").get_attribute("data-csrf")
        far = urllib.parse.urlencode({
            "csrf": csrf, "form_id": "far-point", "msg_type": "alert", "status": "actual",
            "event": "enforcement_activity", "severity": "severe", "area": "la/east-la",
            "lat": "36.75", "lon": "-118.21", "observed_at": now_iso, "headline_en": "far away"}).encode()
        st, body = raw(base, "POST", "/console/reports", cookie_header(d),
                       {"Origin": base, "Sec-Fetch-Site": "same-origin"}, far)
        check(st == 422 and "location" in body,
              "a console report whose point lies far outside its area is refused (%d)" % st)
        check(len(admin(base, "GET", "/v1/incidents")["incidents"]) == before and "far away" not in
              raw(base, "GET", "/console/", cookie_header(d))[1], "the refused report stored nothing")

        # ---- ben approves; time from approve to the first message ----
        login(d, base, "ben")
        wait_for(lambda: "Drafts waiting" in d.page_source, "the board lists the drafts")

        def flagged():
            d.get(base + "/console/")
            return "WAITING TOO LONG" in d.page_source
        wait_for(flagged, "a draft waiting longer than draft_flag_after_s is flagged", timeout=20)
        check(True, "a late draft is flagged on the board")
        d.get(base + drill_draft)
        check("DRILL" in "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, "p.drill-banner")),
              "a drill draft's screen is marked DRILL")
        d.get(draft_url)
        t0 = time.time()
        go(d, d.find_element(By.ID, "approve"))
        wait_for(lambda: len(emu.sms) >= 2 and len(emu.email) >= 1, "emulators receive the alert")
        first = min(m[0] for m in emu.sms + emu.email)
        print("measured: approve -> first message at the emulator: %.0f ms" % ((first - t0) * 1000))
        by_to = {m[1]: m[2] for m in emu.sms}
        check("ICE vehicles at 1st & Soto" in by_to.get("+12135550001", ""), "the English subscriber gets English")
        check("Vehículos de ICE" in by_to.get("+12135550002", ""), "the Spanish subscriber gets Spanish SMS")
        check(emu.email and "Vehículos de ICE" in emu.email[0][2] + emu.email[0][3], "and Spanish email")
        check("+15035550003" not in by_to, "pdx is not alerted by an la alert")
        code = re.search(r"/console/incidents/([A-Z0-9]+)", d.current_url).group(1)
        sc.look("incident")
        check(d.find_elements(By.CSS_SELECTOR, "#incident-map svg circle"),
              "the incident page shows the area shapes with the incident's point")

        # ---- board: progress and acks without a reload ----
        d.get(base + "/console/")
        d.execute_script("window.__noreload = 1")
        sid = [m for m in emu.sms if m[1] == "+12135550001"][0][3]
        twilio_post(base, "/v1/receipts/twilio", {"MessageSid": sid, "MessageStatus": "delivered"})
        twilio_post(base, "/v1/inbound/twilio", {"From": "+12135550001", "Body": "YES", "MessageSid": "SM" + secrets.token_hex(16)})
        row = "tr[data-incident='%s']" % code
        wait_for(lambda: "1 delivered" in d.find_element(By.CSS_SELECTOR, row + " .p-sms").text and
                 "1 responding" in d.find_element(By.CSS_SELECTOR, row + " .acks").text,
                 "board shows the receipt and the ack", timeout=6)
        check(d.execute_script("return window.__noreload") == 1, "board updated without a reload")
        sc.look("board")

        d.get(base + "/console/incidents/" + code)
        go(d, d.find_element(By.CSS_SELECTOR, "form[action$='/retry'] button"))
        check("queued again: 0" in d.page_source, "retry failed answers how many it queued again (none failed)")

        # ---- update and all-clear reach exactly the original recipients ----
        original = sorted(m[1] for m in emu.sms) + sorted(m[1] for m in emu.email)
        n_sms, n_email = len(emu.sms), len(emu.email)
        d.get(base + "/console/incidents/" + code)
        go(d, d.find_element(By.ID, "update"))
        val = lambda i: d.find_element(By.ID, i).get_attribute("value")
        prefilled = {i: val(i) for i in ("headline_en", "headline_es", "instruction_en", "lat", "lon", "loc_desc")}
        check(prefilled == {"headline_en": "ICE vehicles at 1st & Soto", "headline_es": "Vehículos de ICE en 1st y Soto",
                            "instruction_en": "Legal observers needed", "lat": "34.0339", "lon": "-118.2107",
                            "loc_desc": "1st St & Soto St"},
              "the update form is prefilled with the incident's headline, instruction and location %s" % prefilled)
        d.find_element(By.ID, "headline_en").clear()
        d.find_element(By.ID, "headline_en").send_keys("Vehicles moving north on Soto")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        wait_for(lambda: len(emu.sms) >= n_sms + 2 and len(emu.email) >= n_email + 1, "update delivered")
        time.sleep(0.5)
        upd = sorted(m[1] for m in emu.sms[n_sms:]) + sorted(m[1] for m in emu.email[n_email:])
        check(upd == original, "the update reaches exactly the original recipients")
        n_sms, n_email = len(emu.sms), len(emu.email)
        d.get(base + "/console/incidents/" + code)
        go(d, d.find_element(By.ID, "all-clear"))
        # Two people (Ann by SMS; Beto by SMS and email): three messages.
        check(d.find_element(By.ID, "confirm-count").text == "2" and
              d.find_element(By.ID, "confirm-channels").text == "(sms 2 \u00b7 email 1)",
              "all-clear confirmation names the 2 people it reaches, and the messages per channel")
        sc.look("all-clear")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        wait_for(lambda: "Tick the confirmation" in d.page_source, "all-clear refused without the box")
        check(d.find_element(By.ID, "confirm-count").text == "2" and len(emu.sms) == n_sms,
              "all-clear needs the confirmation box, and sent nothing without it")
        d.find_element(By.ID, "confirm").click()
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        wait_for(lambda: len(emu.sms) >= n_sms + 2 and len(emu.email) >= n_email + 1, "all-clear delivered")
        time.sleep(0.5)
        clr = sorted(m[1] for m in emu.sms[n_sms:]) + sorted(m[1] for m in emu.email[n_email:])
        check(clr == original, "the all-clear reaches exactly the original recipients")
        d.get(xss_draft)
        go(d, d.find_element(By.ID, "reject"))
        check("Rejected" in d.page_source, "a second person can reject a draft")

        BEN_COOKIE[0] = cookie_header(d)

        # ---- pdx cannot see or act on an la incident ----
        login(d, base, "pat")
        st, _ = raw(base, "GET", "/console/incidents/" + code, cookie_header(d))
        csrf = d.find_element(By.ID, "main").get_attribute("data-csrf")
        st2, _ = raw(base, "POST", "/console/incidents/%s/retry" % code, cookie_header(d), {"Origin": base},
                     ("csrf=" + csrf).encode())
        st3, _ = raw(base, "GET", "/console/reports/new?msg_type=update&references=" + code, cookie_header(d))
        check((st, st2, st3) == (403, 403, 403), "pdx coordinator gets 403 on an la incident (%d %d %d)" % (st, st2, st3))
        d.get(base + "/console/")
        st, board = raw(base, "GET", "/console/board.json", cookie_header(d))
        check(not d.find_elements(By.CSS_SELECTOR, "tr[data-incident='%s']" % code) and st == 200 and
              code not in board, "pdx's board and board.json leave out the la incident")
        st, _ = raw(base, "POST", drill_draft + "/approve", cookie_header(d), {"Origin": base},
                    ("csrf=" + csrf).encode())
        conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
        state = conn.execute("SELECT state, decided_by FROM drafts WHERE id = ?",
                             (int(drill_draft.rsplit("/", 1)[1]),)).fetchone()
        conn.close()
        check(st == 403 and state == ("waiting", ""),
              "another hotline's coordinator cannot approve a draft (%d, %s)" % (st, state))
        d.get(base + "/console/incidents/" + code)
        sc.look("forbidden")

        corroboration(d, sc, base, emu)

        # ---- drills are marked ----
        d.get(base + "/console/reports/new")
        d.find_element(By.CSS_SELECTOR, "#status option[value='exercise']").click()
        check(d.find_element(By.CSS_SELECTOR, ".drill-when-selected").is_displayed(),
              "choosing a drill shows the DRILL banner")
        d.find_element(By.CSS_SELECTOR, "#event option[value='checkpoint']").click()
        d.find_element(By.CSS_SELECTOR, "#area option[value='pdx']").click()
        d.find_element(By.ID, "headline_en").send_keys("Drill: checkpoint on Burnside")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        m = re.search(r"/console/incidents/([A-Z0-9]+)", d.current_url)
        check(m and d.find_elements(By.CSS_SELECTOR, "h1 strong.drill") and
              d.find_elements(By.CSS_SELECTOR, "p.drill-banner"), "a drill incident's screen is marked DRILL")
        d.get(base + "/console/")
        check(m and d.find_elements(By.CSS_SELECTOR, "tr.drill-row[data-incident='%s'] strong.drill" % m.group(1)),
              "a drill incident's row on the board is marked DRILL")

        # ---- an expired session goes to the login page ----
        conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
        conn.execute("UPDATE sessions SET last_seen = last_seen - 7200000 "
                     "WHERE user_id = (SELECT id FROM console_users WHERE name = 'quin')")
        conn.commit()
        conn.close()
        d.get(base + "/console/")
        check(d.current_url.endswith("/console/login"), "an expired session is sent to the login page")

        # ---- the console's headers and page sizes ----
        st, _ = raw(base, "GET", "/console/login")
        with urllib.request.urlopen(base + "/console/login") as r:
            h = r.headers
            check("frame-ancestors 'none'" in h.get("Content-Security-Policy", "") and
                  h.get("X-Content-Type-Options") == "nosniff" and h.get("Referrer-Policy") == "no-referrer",
                  "security headers on console answers")
        sizes = {}
        for path in ("/console/assets/app.css", "/console/assets/app.js", "/console/login"):
            with urllib.request.urlopen(base + path) as r:
                sizes[path] = len(r.read())
        total = sum(sizes.values())
        print("measured: page sizes (bytes): %s; total %d" % (sizes, total))
        check(total < 150_000, "console assets are under 150 KB")
        # ---- admin screens: masked subscribers, users, audit log ----
        st, _ = raw(base, "GET", "/console/admin/subscribers", BEN_COOKIE[0])
        check(st == 403, "a coordinator may not open the admin screens (%d)" % st)
        login(d, base, "ops")
        d.get(base + "/console/admin/subscribers")
        page = d.find_element(By.ID, "admin-subscribers").text
        check("+12135550001" not in d.page_source and "beto@example.org" not in d.page_source and
              "la-responders" in page, "the subscriber list is masked")
        sc.look("admin-subscribers")
        d.get(base + "/console/admin/users")
        check("pdx-hotline" in d.find_element(By.ID, "admin-users").text, "the users screen lists accounts")
        sc.look("admin-users")
        d.get(base + "/console/admin/audit")
        check("/console/drafts/{id}/approve" in d.find_element(By.ID, "admin-audit").text,
              "the audit screen shows console actions")
        sc.look("admin-audit")
        # ---- admin: one subscriber in full, add, edit, erase, CSV upload ----
        console_admin_steps.run(sys.modules[__name__], d, sc, base, config, emu, tmp, BEN_COOKIE[0])

        # ---- Spanish, chosen by the person ----
        d.get(base + "/console/lang?l=es")
        d.get(base + "/console/admin/users")
        check("Usuarios de la consola" in d.page_source and 'lang="es"' in d.page_source,
              "the interface switches to Spanish")
        d.get(base + "/console/lang?l=en")

        sessions_and_logout(d, base, config)
        enrolment_rules(base, cfg_path, config)

        # ---- the audit log names the person ----
        entries = admin(base, "GET", "/v1/audit?limit=500")["entries"]
        acts = {(e["actor"], e["route"], e["status"]) for e in entries}
        check(("ben", "/console/drafts/{id}/approve", 200) in acts and
              ("ana", "/console/drafts/{id}/approve", 403) in acts and
              ("ana", "/console/reports (draft)", 201) in acts and ("cli", "tocsin users add", 200) in acts,
              "approvals, refusals, drafts and users commands are audited with the person's name")
        want = {("ana", "/console/login", 401), ("ana", "/console/login", 200), ("ops", "/console/logout", 200),
                ("ops", "/console/logout-all", 200), ("ben", "/console/drafts/{id}/reject", 200),
                ("ben", "/console/incidents/{code}/retry", 200), ("pat", "/console/incidents/{code}/retry", 403),
                ("pat", "/console/drafts/{id}/approve", 403)}
        check(want <= acts, "logins (refused too), logout, logout everywhere, reject and retry are audited "
              "with the person's name (missing: %s)" % sorted(want - acts))

        # ---- login throttle: a growing delay, never a lock ----
        pre_cookie, pre = pre_session(base)

        def bad_login(name):
            return raw(base, "POST", "/console/login", pre_cookie, {"Origin": base},
                       ("pre=%s&name=%s&passphrase=wrong+passphrase+x&code=000000" % (pre, name)).encode())

        def throttle_row(key):
            conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
            try:
                return conn.execute("SELECT failures, next_at - updated_at FROM login_throttle WHERE key = ?",
                                    (key,)).fetchone()
            finally:
                conn.close()
        tries = [bad_login("pat") for _ in range(4)]
        codes = [t[0] for t in tries]
        check(codes == [401, 401, 401, 429] and "Try again in 1 s" in tries[3][1] and
              throttle_row("user:pat") == (3, 1000),
              "failed logins of an account are slowed down, by a row of its own (%s, %s)" %
              (codes, throttle_row("user:pat")))
        time.sleep(1.2)
        check(bad_login("pat")[0] == 401, "the delay ends: no permanent lock")
        st, body = bad_login("pat")
        check(st == 429 and "Try again in 2 s" in body and throttle_row("user:pat") == (4, 2000),
              "the delay grows with each failure (%d, %s)" % (st, throttle_row("user:pat")))
        check(bad_login("nobody")[0] == 429 and throttle_row("user:nobody") is None,
              "a name that is no account is slowed by the address alone, with no row of its own")

        # ---- users list, disable (ends sessions) and reset ----
        r = subprocess.run([TOCSIN, "users", "list", "--config", cfg_path], capture_output=True, text=True)
        check(r.returncode == 0 and re.search(r"pat\s+coordinator\s+pdx-hotline\s+enrolled", r.stdout),
              "users list shows roles and states")
        r = subprocess.run([TOCSIN, "users", "disable", "--config", cfg_path, "ben"], capture_output=True, text=True)
        check(r.returncode == 0 and "1 session(s) ended" in r.stdout, "users disable ends the sessions: " + r.stdout.strip())
        st, _ = raw(base, "GET", "/console/board.json", BEN_COOKIE[0])
        check(st == 401, "a disabled user's session no longer works")
        r = subprocess.run([TOCSIN, "users", "reset", "--config", cfg_path, "ana"], capture_output=True, text=True)
        check(r.returncode == 0 and "/console/enrol/" in r.stdout, "users reset prints a new enrolment link")
    finally:
        d.quit()


def sessions_and_logout(d, base, config):
    """Sessions are kept as hashes; one used all along ends 12 h after its
    login; logout ends one session, logout everywhere all of the person's.
    Other devices' sessions are made here by their hashes, as a login there
    would have stored them."""
    tok = d.get_cookie("tocsin_session")["value"]
    conn = sqlite3.connect(config["storage"]["sqlite"]["path"])
    hashes = [r[0] for r in conn.execute("SELECT token_hash FROM sessions")]
    check(tok not in hashes and blake(tok) in hashes, "sessions are stored only as hashes of their tokens")
    toks = {k: secrets.token_hex(32) for k in ("phone", "tablet", "old", "almost")}
    age = {"phone": 0, "tablet": 0, "old": 12 * 3600_000 + 1000, "almost": 12 * 3600_000 - 60_000}
    for k, t in toks.items():
        conn.execute("INSERT INTO sessions SELECT ?, user_id, csrf, created_at - ?, last_seen FROM sessions "
                     "WHERE token_hash = ?", (blake(t), age[k], blake(tok)))
    csrf = conn.execute("SELECT csrf FROM sessions WHERE token_hash = ?", (blake(tok),)).fetchone()[0]
    conn.commit()
    conn.close()

    def works(k):
        return raw(base, "GET", "/console/board.json", "tocsin_session=" + toks[k])[0] == 200
    check(not works("old") and works("almost"),
          "a session in use all along ends 12 h after its login, not before (absolute timeout)")
    st, _ = raw(base, "POST", "/console/logout", "tocsin_session=" + toks["phone"], {"Origin": base},
                ("csrf=" + csrf).encode())
    check(st == 200 and not works("phone") and works("tablet"), "logout ends that session only")
    d.get(base + "/console/")
    go(d, d.find_element(By.CSS_SELECTOR, "form[action='/console/logout-all'] button"))
    d.get(base + "/console/")
    check(not works("tablet") and not works("almost") and d.current_url.endswith("/console/login"),
          "logout everywhere ends every session of the person")


def enrolment_rules(base, cfg_path, config):
    """An expired enrolment link is refused; a passphrase under 12
    characters is refused (characters, not bytes), one of 12 is taken."""
    links = {}
    for name in ("late", "short"):
        r = subprocess.run([TOCSIN, "users", "add", "--config", cfg_path, name, "--role", "verifier"],
                           capture_output=True, text=True)
        links[name] = re.search(r"/console/enrol/([0-9a-f]{64})", r.stdout).group(1)
    db = config["storage"]["sqlite"]["path"]
    conn = sqlite3.connect(db)
    conn.execute("UPDATE console_users SET enrol_expires = ? WHERE name = 'late'", (int(time.time() * 1000) - 1,))
    conn.commit()
    conn.close()

    def page(name):
        st, h, body = fetch(base + "/console/enrol/" + links[name])
        cookie = h.get("Set-Cookie", "").split(";")[0]  # tocsin_pre=TOKEN, the form's token too
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', body)
        return st, cookie, cookie.split("=", 1)[-1], secret and secret.group(1), body

    def enrol(name, cookie, pre, secret, passphrase):
        fields = {"pre": pre, "token": links[name], "secret": secret, "passphrase": passphrase,
                  "passphrase2": passphrase, "code": totp(secret, int(time.time()) // 30)}
        return fetch(base + "/console/enrol", cookie, urllib.parse.urlencode(fields).encode(), {"Origin": base})[0]

    def enrolled(name):
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT pw_hash <> '' FROM console_users WHERE name = ?", (name,)).fetchone()[0] == 1
        finally:
            conn.close()
    st, cookie, pre, _, body = page("late")
    late = enrol("late", cookie, pre, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "late passphrase 2026")
    check(st == 404 and "not valid" in body and late == 404 and not enrolled("late"),
          "an expired enrolment link is refused, and enrols nobody (%d, %d)" % (st, late))
    st, cookie, pre, secret, _ = page("short")
    short = enrol("short", cookie, pre, secret, "\u00f1" * 11)  # 22 bytes, 11 characters
    check(st == 200 and short == 422 and not enrolled("short"),
          "a passphrase of 11 characters is refused (%d)" % short)
    ok = enrol("short", cookie, pre, secret, "\u00f1" * 12)
    check(ok == 200 and enrolled("short"), "one of 12 characters is taken (%d)" % ok)


def https_cookies(emu_url):
    """With an https public_url (behind a TLS proxy), the console's cookies
    are __Host- prefixed and Secure, seen over plain HTTP on loopback."""
    tmp = tempfile.mkdtemp(prefix="tocsin-browser-https-")
    try:
        port = free_port()
        base, public = "http://127.0.0.1:%d" % port, "https://alerts.example.org"
        subprocess.run([TOCSIN, "keys", "generate", os.path.join(tmp, "tocsin.key")], check=True,
                       stdout=subprocess.DEVNULL)
        cfg = {"server": {"listen": "127.0.0.1:%d" % port, "public_url": public},
               "storage": {"sqlite": {"path": os.path.join(tmp, "tocsin.db")},
                           "key_file": os.path.join(tmp, "tocsin.key")},
               "coordinators": [{"name": "la-hotline", "areas": ["la"], "secret": "whsec_" +
                                 base64.b64encode(b"https-test-secret-0123456789ab").decode()}],
               "gateways": [{"name": "twilio", "type": "twilio", "channel": "sms", "base_url": emu_url,
                             "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": AUTH_TOKEN,
                             "from": "+12135550100"}],
               "groups": [{"name": "la-responders", "match": {"areas": ["la"]}, "channels": ["sms"]}],
               "console": {"enabled": True}}
        cfg_path = os.path.join(tmp, "tocsin.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([TOCSIN, "users", "add", "--config", cfg_path, "hana", "--role", "coordinator",
                            "--coordinator", "la-hotline"], capture_output=True, text=True)
        token = re.search(r"/console/enrol/([0-9a-f]{64})", r.stdout).group(1)
        with tocsin_daemon.running(TOCSIN, cfg_path, tmp, base):
            st, h, body = fetch(base + "/console/enrol/" + token)
            pre_cookie = h.get("Set-Cookie", "")
            check(st == 200 and re.fullmatch(r"__Host-tocsin_pre=[0-9a-f.]+; Path=/; HttpOnly; SameSite=Strict; Secure",
                                             pre_cookie), "https: the pre-session cookie is __Host- and Secure: " + pre_cookie)
            cookie = pre_cookie.split(";")[0]
            pre = re.search(r'name="pre" value="([^"]+)"', body).group(1)
            secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', body).group(1)
            step = int(time.time()) // 30
            pw = "hana passphrase 2026"
            st, _, _ = fetch(base + "/console/enrol", cookie, urllib.parse.urlencode(
                {"pre": pre, "token": token, "secret": secret, "passphrase": pw, "passphrase2": pw,
                 "code": totp(secret, step)}).encode(), {"Origin": public})
            st2, h, _ = fetch(base + "/console/login", cookie, urllib.parse.urlencode(
                {"pre": pre, "name": "hana", "passphrase": pw, "code": totp(secret, step + 1)}).encode(),
                {"Origin": public})
            session = h.get("Set-Cookie", "")
            check(st == 200 and st2 == 303 and re.fullmatch(
                r"__Host-tocsin_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Secure", session),
                "https: the session cookie is __Host- and Secure (%d %d): %s" % (st, st2, session))
            value = session.split(";")[0].split("=", 1)[1]
            check(raw(base, "GET", "/console/board.json", "__Host-tocsin_session=" + value)[0] == 200 and
                  raw(base, "GET", "/console/board.json", "tocsin_session=" + value)[0] == 401,
                  "https: only the __Host- cookie opens the session")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def corroboration(d, sc, base, emu):
    """Two people of one coordinator corroborate (issue 15): pat's report is
    held from pdx-wide (the preview says so before sending, the timeline
    after), pat's second report changes nothing, quin's releases it."""
    held_line = "pdx-wide: \u23f8 2 reporters (has 1)"

    def report_as(name, merge_into=None, held=True):
        """Fills the form; the live preview must show whether pdx-wide would
        wait (held) and which incident the report would join; then sends it."""
        d.get(base + "/console/reports/new")
        d.find_element(By.CSS_SELECTOR, "#area option[value='pdx']").click()
        d.find_element(By.ID, "headline_en").send_keys("Checkpoint at the Burnside Bridge")
        out = lambda: d.find_element(By.ID, "preview-out").text
        merge_words = "This would merge into open incident %s: \u201cCheckpoint at the Burnside Bridge\u201d" % merge_into
        wait_for(lambda: "Burnside" in out() and (not merge_into or merge_words in out()),
                 "%s's live preview" % name)
        pv = out()
        check((held_line in pv) == held, "%s's preview shows pdx-wide %s before sending" %
              (name, "held, waiting for 2 reporters" if held else "no longer held"))
        check("pdx-responders: \u23f8" not in pv, "%s's preview: pdx-responders are not held" % name)
        if not merge_into:
            sc.look("report-form-held")
        go(d, d.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]"))
        m = re.search(r"/console/incidents/([A-Z0-9]+)", d.current_url)
        check(m is not None, "%s's report leads to its incident page" % name)
        return m.group(1) if m else ""

    def timeline():
        return d.find_element(By.CSS_SELECTOR, "ol.timeline").text

    def pdx_wide():
        inc = admin(base, "GET", "/v1/incidents/" + code)
        return [g for g in inc.get("groups", []) if g.get("group", g.get("name")) == "pdx-wide"]

    def sms_to(number):
        with emu.lock:
            return [m for m in emu.sms if m[1] == number]

    steps0 = safety_steps(base)
    code = report_as("pat")
    check(safety_steps(base).get("held", 0) == steps0.get("held", 0) + 1,
          "a console report that holds a group counts in tocsin_safety_steps_total{step=held}")
    check("held \u00b7 pdx-wide \u00b7 waits for 2 reporters (has 1)" in timeline(),
          "the incident page's timeline shows pdx-wide held, waiting for 2 reporters")
    wait_for(lambda: sms_to("+15035550003"), "pdx-responders get the alert at once")
    check(not sms_to("+15035550004"), "pdx-wide gets nothing from one person's report")
    sc.look("incident-held")
    # The same person again: merged, still one reporter, still held.
    check(report_as("pat", merge_into=code) == code, "pat's second report joins the incident")
    check([g.get("state") for g in pdx_wide()] == ["held"], "one person twice does not release pdx-wide")
    check("released" not in timeline(), "and the timeline shows no release")
    # A second person of the same coordinator: released, once.
    login(d, base, "quin")
    check(report_as("quin", merge_into=code, held=False) == code, "quin's report joins the incident")
    check([g.get("state") for g in pdx_wide()] == ["sent"], "a second person releases pdx-wide")
    check("released \u00b7 pdx-wide" in timeline(), "the incident page's timeline shows the release")
    check(safety_steps(base).get("released", 0) == steps0.get("released", 0) + 1,
          "the release by a console report counts in tocsin_safety_steps_total{step=released}")
    got = wait_for(lambda: sms_to("+15035550004"), "pdx-wide gets the alert once released")
    check(len(got) == 1 and "CONFIRMED" in got[0][2], "pdx-wide gets one CONFIRMED alert: %s" % got[0][2][:60])
    check(len(sms_to("+15035550003")) == 1, "pdx-responders are not messaged twice")


if __name__ == "__main__":
    sys.exit(main())

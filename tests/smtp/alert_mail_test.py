#!/usr/bin/env python3
"""Alert email at a real SMTP server (issue 17): aiosmtpd, not tocsin's own sink.

Starts Debian's aiosmtpd (python3-aiosmtpd) on a free loopback port and the
real build/tocsin with an smtp gateway pointed at it; sends an alert, an
update and an all-clear as a coordinator (signed webhook); parses every
message aiosmtpd received with Python's email package under
email.policy.strict (any defect raises) and checks From, To, Subject, Date,
Message-ID, List-Unsubscribe (RFC 8058, with the same link in the footer),
List-Unsubscribe-Post, Auto-Submitted (RFC 3834), and In-Reply-To/References
of the alert's Message-ID on the update and the all-clear. Then posts
List-Unsubscribe=One-Click to the header's link, as Gmail does, and checks
that the next alert sends no email to that person. Exits 77 (CTest
SKIP_RETURN_CODE) only when aiosmtpd is missing (scripts/install-deps).

    tests/smtp/alert_mail_test.py BUILD_DIR
"""
import base64
import email
import email.policy
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tocsin_daemon  # noqa: E402 (after the path it lives on)

# 77 is CTest's "skipped"; where every tool must be there (.ci/run sets
# TOCSIN_NO_SKIP=1, having installed them), a missing one is a failure, so
# that a green CI run always means this test ran.
SKIP = 1 if os.environ.get("TOCSIN_NO_SKIP") else 77
if "/usr/lib/python3/dist-packages" not in sys.path:  # Debian's python3-aiosmtpd under another python3
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from aiosmtpd.controller import Controller
except ImportError:
    print("SKIP: python3-aiosmtpd is not installed (scripts/install-deps)")
    sys.exit(SKIP)

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
TOCSIN = os.path.join(BUILD, "tocsin")
ADMIN = "smtp-test-admin-token-0123456789"
SECRET = "whsec_" + base64.b64encode(b"smtp-test-coordinator-secret-01").decode()
DEADLINE = time.monotonic() + 120

failures = []
passed = [0]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if cond:
        passed[0] += 1
    else:
        failures.append(what)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Inbox:
    """aiosmtpd handler: keeps each message as received, with its envelope."""

    def __init__(self):
        self.messages = []  # (rcpt_tos, raw bytes)
        self.cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.cond:
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
            self.cond.notify_all()
        return "250 OK"

    def wait_for(self, n, what, timeout=20.0):
        end = min(time.monotonic() + timeout, DEADLINE)
        with self.cond:
            while len(self.messages) < n:
                left = end - time.monotonic()
                if left <= 0:
                    check(False, "timed out waiting for %d message(s): %s (have %d)" % (n, what, len(self.messages)))
                    raise SystemExit(report())
                self.cond.wait(left)
            return list(self.messages)


def report():
    print("%d passed, %d failed" % (passed[0], len(failures)))
    return 1 if failures else 0


def call(base, method, path, body=None, headers=None, raw=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, method=method, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin(base, method, path, body=None):
    st, text = call(base, method, path, body, {"Authorization": "Bearer " + ADMIN})
    return st, json.loads(text or "{}")


def submit(base, report_body):
    """POSTs a report signed as Standard Webhooks (README "Coordinators")."""
    body = json.dumps(report_body).encode()
    wid, ts = "msg_" + secrets.token_hex(8), str(int(time.time()))
    key = base64.b64decode(SECRET[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, (wid + "." + ts + ".").encode() + body, hashlib.sha256).digest())
    st, text = call(base, "POST", "/v1/reports", raw=body,
                    headers={"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": "v1," + sig.decode()})
    return st, json.loads(text or "{}")


def report_of(msg_type, event="enforcement_activity", references=None):
    r = {"msg_type": msg_type, "status": "actual", "event": event, "severity": "severe",
         "area": "la/boyle-heights",
         "location": {"lat": 34.0339, "lon": -118.2107, "description": "1st St & Soto St"},
         "observed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
         "headline": {"en": "ICE vehicles at 1st & Soto (%s)" % msg_type,
                      "es": "Vehículos de ICE en 1st y Soto (%s)" % msg_type},
         "instruction": {"en": "Legal observers needed", "es": "Se necesitan observadores legales"}}
    if references:
        r["references"] = references
    return r


def parse_strict(raw, what):
    """The message under email.policy.strict: a defect anywhere raises."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.strict)
        bad = [(k, [type(d).__name__ for d in v.defects]) for k, v in msg.items() if v.defects]
        for part in msg.walk():
            if part.defects:
                bad.append(("part " + part.get_content_type(), [type(d).__name__ for d in part.defects]))
            if not part.is_multipart():
                part.get_content()  # decodes the transfer encoding and charset
        check(not bad, "%s parses strictly, no header or part defect %s" % (what, bad or ""))
        return msg
    except Exception as e:  # email.errors.MessageDefect and friends
        check(False, "%s parses strictly: %s: %s" % (what, type(e).__name__, e))
        return None


def text_of(msg):
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    return part.get_content() if part is not None else ""


def check_message(msg, what, public_url, rcpt, alert_id=None):
    """The headers every alert email carries; returns (token, Message-ID)."""
    for h in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
              "List-Unsubscribe-Post", "Auto-Submitted"):
        check(len(msg.get_all(h) or []) == 1, "%s has exactly one %s" % (what, h))
    check(email.utils.parseaddr(str(msg["From"]))[1] == "alerts@example.org", what + " is from the gateway's from")
    check(email.utils.parseaddr(str(msg["To"]))[1] == rcpt, what + " is to its envelope recipient")
    check(email.utils.parsedate_to_datetime(str(msg["Date"])) is not None, what + " has an RFC 5322 Date")
    mid = str(msg["Message-ID"])
    check(re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid) is not None, "%s Message-ID is <id@domain> (%s)" % (what, mid))
    lu = str(msg["List-Unsubscribe"])
    m = re.fullmatch(re.escape("<" + public_url + "/u/") + r"([A-Za-z0-9_-]+)>", lu)
    check(m is not None, "%s List-Unsubscribe is <public_url/u/TOKEN> (%s)" % (what, lu))
    token = m.group(1) if m else ""
    check(rcpt.split("@")[0] not in lu, what + ": no personal data in the unsubscribe link")
    check(str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click", what + " List-Unsubscribe-Post (RFC 8058)")
    check(str(msg["Auto-Submitted"]) == "auto-generated", what + " Auto-Submitted: auto-generated (RFC 3834)")
    check(token and (public_url + "/u/" + token) in text_of(msg), what + ": the same link in the body's footer")
    if alert_id is None:
        check(msg["In-Reply-To"] is None and msg["References"] is None, what + " starts a thread (no In-Reply-To)")
    else:
        check(str(msg["In-Reply-To"]) == alert_id, "%s In-Reply-To is the alert's Message-ID" % what)
        check(alert_id in str(msg["References"] or "").split(), "%s References holds the alert's Message-ID" % what)
    return token, mid


def main():
    tmp = tempfile.mkdtemp(prefix="tocsin-smtp-")
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    subprocess.run([TOCSIN, "keys", "generate", os.path.join(tmp, "tocsin.key")], check=True,
                   stdout=subprocess.DEVNULL)
    config = {
        "server": {"listen": "127.0.0.1:%d" % port, "public_url": base},
        "storage": {"sqlite": {"path": os.path.join(tmp, "tocsin.db")},
                    "key_file": os.path.join(tmp, "tocsin.key")},
        "coordinators": [{"name": "la-hotline", "secret": SECRET, "areas": ["la"]}],
        "admin": {"tokens": [ADMIN]},
        "gateways": [{"name": "mail", "type": "smtp", "channel": "email",
                      "url": "smtp://127.0.0.1:%d" % smtp.port, "from": "alerts@example.org",
                      "rate_per_s": 50, "timeout_ms": 5000}],
        "groups": [{"name": "lawyers", "match": {"areas": ["la"]}, "channels": ["email"]}],
    }
    cfg_path = os.path.join(tmp, "tocsin.json")
    with open(cfg_path, "w") as f:
        json.dump(config, f)
    try:
        with tocsin_daemon.running(TOCSIN, cfg_path, tmp, base):
            run(base, inbox)
    finally:
        smtp.stop()
        if failures:
            print("--- daemon log tail ---")
            print(tocsin_daemon.log_tail(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    return report()


def run(base, inbox):
    people = {"ana@example.org": "es-MX", "bo@example.org": "en"}
    ids = {}
    for addr, lang in people.items():
        st, j = admin(base, "POST", "/v1/subscribers",
                      {"email": addr, "language": lang, "groups": ["lawyers"], "channels": ["email"]})
        check(st == 201, "subscriber %s added (%d)" % (addr, st))
        ids[addr] = j.get("id")

    st, a = submit(base, report_of("alert"))
    check(st == 202 and a.get("recipients") == 2, "the alert is accepted for 2 recipients (%d %s)" % (st, a))
    code = a.get("incident_id", "")
    got = inbox.wait_for(2, "the alert")
    tokens, alert_ids = {}, {}
    for rcpts, raw in got:
        rcpt = rcpts[0]
        msg = parse_strict(raw, "alert to " + rcpt)
        if msg is not None:
            tokens[rcpt], alert_ids[rcpt] = check_message(msg, "alert to " + rcpt, base, rcpt)
    check(sorted(tokens) == sorted(people), "each person got the alert once")
    check(len(set(tokens.values())) == 2, "each person has an own unsubscribe token")

    for kind, n in (("update", 4), ("cancel", 6)):
        st, r = submit(base, report_of(kind, references=code))
        check(st == 202 and r.get("outcome") == kind, "the %s is accepted (%d %s)" % (kind, st, r))
        got = inbox.wait_for(n, "the " + kind)
        for rcpts, raw in got[n - 2:n]:
            rcpt = rcpts[0]
            msg = parse_strict(raw, kind + " to " + rcpt)
            if msg is not None and rcpt in alert_ids:
                check_message(msg, kind + " to " + rcpt, base, rcpt, alert_ids[rcpt])

    # One click, as Gmail sends it (RFC 8058 3.2), to the header's link.
    lu = base + "/u/" + tokens.get("ana@example.org", "")
    st, _ = call(base, "POST", lu[len(base):], raw=b"List-Unsubscribe=One-Click",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 200, "POST List-Unsubscribe=One-Click answers 200 (%d)" % st)
    st, s = admin(base, "GET", "/v1/subscribers/%s" % ids["ana@example.org"])
    check(s.get("email_opted_out") is True, "ana is opted out of email")
    before = len(inbox.messages)
    st, b = submit(base, report_of("alert", event="checkpoint"))
    check(st == 202 and b.get("recipients") == 1, "the next alert is for 1 recipient (%d %s)" % (st, b))
    got = inbox.wait_for(before + 1, "the next alert")
    # Every delivery of the incident is recorded before we look for more mail.
    end = time.monotonic() + 15
    while time.monotonic() < end:
        st, inc = admin(base, "GET", "/v1/incidents/" + b.get("incident_id", ""))
        e = inc.get("deliveries", {}).get("email", {})
        if e.get("sent", 0) + e.get("delivered", 0) >= 1 and e.get("pending", 0) == 0:
            break
        time.sleep(0.1)
    got = list(inbox.messages)
    check([r[0] for r, _ in got[before:]] == ["bo@example.org"], "the next alert mails bo only, not ana")


if __name__ == "__main__":
    sys.exit(main())

"""The admin's subscriber screens in the browser test (issue 13): one subscriber
in full (audited), add (partly with the keyboard alone), edit, erase, a CSV
upload with the CLI's per-line report, 403 for a coordinator, a cross-site
POST refused. Called by console_test.py with that module (its helpers and
counters) while the admin "ops" is logged in.
"""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse


def run(t, d, sc, base, config, emu, tmp, ben_cookie):
    By = t.By
    check, wait_for, go, raw, admin = t.check, t.wait_for, t.go, t.raw, t.admin
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def subs():
        return admin(base, "GET", "/v1/subscribers?limit=500")["subscribers"]

    def audit_has(actor, route, object_id, status):
        return any(e["actor"] == actor and e["route"] == route and (e.get("object_id") or "") == object_id
                   and e["status"] == status for e in admin(base, "GET", "/v1/audit?limit=500")["entries"])

    secret_file = os.path.join(tmp, "pdx.secret")
    with open(secret_file, "w") as f:
        f.write(config["coordinators"][1]["secret"])

    def pdx_alert(event, key):
        report = {"msg_type": "alert", "status": "actual", "event": event, "severity": "severe",
                  "area": "pdx", "observed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "headline": {"en": "Checkpoint " + key, "es": "Control " + key}, "dedup_key": key}
        path = os.path.join(tmp, key + ".json")
        with open(path, "w") as f:
            json.dump(report, f)
        r = subprocess.run([t.TOCSIN, "submit", "--url", base, "--secret-file", secret_file, path],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "new_incident" in r.stdout, "a pdx alert is accepted: " + r.stdout.strip()[:120])

    pia = next(s["id"] for s in subs() if "pdx-responders" in s["groups"])
    cookie = t.cookie_header(d)

    # ---- one subscriber in full: the view is audited with the admin's name ----
    d.get(base + "/console/admin/subscribers")
    go(d, d.find_element(By.LINK_TEXT, str(pia)))
    check("+15035550003" in d.find_element(By.ID, "subscriber").text, "an admin sees one subscriber in full")
    check(audit_has("ops", "/console/admin/subscribers/{id}", str(pia), 200),
          "viewing a subscriber in full is in the audit log with the admin's name")
    sc.look("admin-subscriber")

    # ---- add: bad input shows the field's problem and stores nothing ----
    n_before = len(subs())
    d.get(base + "/console/admin/subscribers/new")
    d.find_element(By.ID, "s-name").send_keys("Nia")
    d.find_element(By.ID, "s-phone").send_keys("12")
    go(d, d.find_element(By.CSS_SELECTOR, "#subscriber-form button[type=submit]"))
    err_phone = d.find_elements(By.ID, "err-phone")
    err_groups = d.find_elements(By.ID, "err-groups")
    check(err_phone and "valid phone number" in err_phone[0].text and err_groups and
          d.find_element(By.ID, "s-phone").get_attribute("aria-invalid") == "true",
          "a bad phone and no group are shown at their fields")
    check(len(subs()) == n_before, "the refused form stored nothing")
    sc.look("admin-subscriber-new")

    # ---- add, with the keyboard alone (Tab, typing, Space, Enter) ----
    d.get(base + "/console/admin/subscribers/new")
    keys = ActionChains(d)

    def tab_to(element_id, limit=40):
        for _ in range(limit):
            if d.execute_script("return document.activeElement && document.activeElement.id") == element_id:
                return True
            ActionChains(d).send_keys(Keys.TAB).perform()
        return check(False, "Tab reaches #" + element_id)

    tab_to("s-name")
    keys.send_keys("Nia Keys").perform()
    tab_to("s-phone")
    ActionChains(d).send_keys("+1 503 555 0009").perform()
    tab_to("s-language")
    ActionChains(d).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys("es").perform()
    tab_to("s-groups-pdx-responders")
    ActionChains(d).send_keys(Keys.SPACE).perform()
    tab_to("s-channels-voice")
    ActionChains(d).send_keys(Keys.TAB).perform()  # to the submit button
    check(d.execute_script("return document.activeElement.type") == "submit", "Tab reaches the Add button")
    ActionChains(d).send_keys(Keys.ENTER).perform()
    wait_for(lambda: d.find_elements(By.ID, "saved"), "the keyboard-only add is saved")
    nia = int(re.search(r"/subscribers/(\d+)", d.current_url).group(1))
    nia_json = admin(base, "GET", "/v1/subscribers/%d" % nia)
    check(nia_json["phone"] == "+15035550009" and nia_json["language"] == "es" and
          nia_json["groups"] == ["pdx-responders"], "the subscriber added with the keyboard alone is stored")
    check(any(s["id"] == nia for s in subs()), "GET /v1/subscribers shows the new subscriber")
    check(audit_has("ops", "/console/admin/subscribers", str(nia), 201), "the add is audited")

    # an alert reaches the new person at the emulator, in Spanish
    pdx_alert("patrol_sighting", "console-admin-1")  # an event no other step uses: never merged
    wait_for(lambda: any(m[1] == "+15035550009" for m in emu.sms), "the new subscriber gets the alert")
    check("Control console-admin-1" in [m[2] for m in emu.sms if m[1] == "+15035550009"][0],
          "the new subscriber gets it in Spanish")

    # ---- edit the language ----
    go(d, d.find_element(By.ID, "edit"))
    sc.look("admin-subscriber-edit")
    lang = d.find_element(By.ID, "s-language")
    lang.clear()
    lang.send_keys("en")
    go(d, d.find_element(By.CSS_SELECTOR, "#subscriber-form button[type=submit]"))
    check(d.find_element(By.ID, "s-lang").text == "en" and
          admin(base, "GET", "/v1/subscribers/%d" % nia)["language"] == "en", "an admin edits the language")
    d.get(base + "/console/admin/subscribers/%d/edit" % nia)
    ph = d.find_element(By.ID, "s-phone")
    ph.clear()
    ph.send_keys("not a number")
    go(d, d.find_element(By.CSS_SELECTOR, "#subscriber-form button[type=submit]"))
    check(d.find_elements(By.ID, "err-phone") and
          admin(base, "GET", "/v1/subscribers/%d" % nia)["phone"] == "+15035550009",
          "a bad edit shows the phone's problem and changes nothing")

    # ---- cross-site POST, a POST without token, a coordinator: refused, nothing changes ----
    st1, _ = raw(base, "POST", "/console/admin/subscribers/%d/erase" % nia, cookie,
                 {"Origin": "http://evil.example"}, b"confirm=yes")
    st2, _ = raw(base, "POST", "/console/admin/subscribers/%d/erase" % nia, cookie,
                 {"Origin": base, "Sec-Fetch-Site": "same-origin"}, b"confirm=yes")
    csrf = d.find_element(By.ID, "main").get_attribute("data-csrf")
    st3, _ = raw(base, "POST", "/console/admin/subscribers/%d/erase" % nia, cookie, {"Origin": base},
                 ("csrf=" + csrf).encode())  # no confirmation
    check((st1, st2, st3) == (403, 403, 422), "cross-site, token-less and unconfirmed erases are refused (%d %d %d)"
          % (st1, st2, st3))
    ben_csrf = re.search(r'data-csrf="([^"]+)"', raw(base, "GET", "/console/", ben_cookie)[1]).group(1)
    codes = [raw(base, "GET", "/console/admin/subscribers/%d" % pia, ben_cookie)[0],
             raw(base, "GET", "/console/admin/subscribers/new", ben_cookie)[0],
             raw(base, "POST", "/console/admin/subscribers", ben_cookie, {"Origin": base},
                 ("csrf=%s&name=X&phone=%%2B15035550077&groups=pdx-responders" % ben_csrf).encode())[0],
             raw(base, "POST", "/console/admin/subscribers/%d" % nia, ben_cookie, {"Origin": base},
                 ("csrf=%s&language=fr&phone=%%2B15035550009&groups=pdx-responders" % ben_csrf).encode())[0],
             raw(base, "POST", "/console/admin/subscribers/%d/erase" % nia, ben_cookie, {"Origin": base},
                 ("csrf=%s&confirm=yes" % ben_csrf).encode())[0],
             raw(base, "POST", "/console/admin/subscribers/import", ben_cookie, {"Origin": base},
                 ("csrf=%s&csv=phone,groups%%0A%%2B15035550078,pdx-responders" % ben_csrf).encode())[0]]
    check(codes == [403] * 6, "a coordinator gets 403 on the subscriber routes %s" % codes)
    after = admin(base, "GET", "/v1/subscribers/%d" % nia)
    check(after["language"] == "en" and len(subs()) == n_before + 1, "the refused POSTs changed nothing")
    check(audit_has("ben", "/console/admin/subscribers/{id}/erase", str(nia), 403),
          "the coordinator's refused erase is audited")

    # ---- erase, with the confirmation; the next alert does not reach them ----
    d.get(base + "/console/admin/subscribers/%d" % nia)
    d.find_element(By.ID, "confirm").click()
    go(d, d.find_element(By.ID, "erase"))
    check(d.find_elements(By.ID, "erased"), "the erase is confirmed")
    try:
        admin(base, "GET", "/v1/subscribers/%d" % nia)
        gone = False
    except urllib.error.HTTPError as e:
        gone = e.code == 404
    check(gone and not any(s["id"] == nia for s in subs()), "the erased subscriber is gone")
    to_nia = len([m for m in emu.sms if m[1] == "+15035550009"])
    to_pia = len([m for m in emu.sms if m[1] == "+15035550003"])
    pdx_alert("vehicle_stop", "console-admin-2")
    wait_for(lambda: len([m for m in emu.sms if m[1] == "+15035550003"]) > to_pia, "the next pdx alert goes out")
    time.sleep(0.5)  # the same dispatch would have sent to the erased number alongside
    check(len([m for m in emu.sms if m[1] == "+15035550009"]) == to_nia, "the next alert does not reach the erased person")

    # ---- CSV upload: one good line, one bad; the report names the bad line and field ----
    csv_path = os.path.join(tmp, "people.csv")
    with open(csv_path, "w") as f:
        f.write("name,phone,language,groups\nOla,+1 503 555 0010,es,pdx-responders\nBad,12345,en,pdx-responders\n")
    n_before = len(subs())
    d.get(base + "/console/admin/subscribers/import")
    d.find_element(By.ID, "csv-file").send_keys(csv_path)
    wait_for(lambda: "Ola" in d.find_element(By.ID, "csv").get_property("value"), "the file fills the form")
    sc.look("admin-import")
    go(d, d.find_element(By.CSS_SELECTOR, "#import-form button[type=submit]"))
    summary = d.find_element(By.ID, "import-summary").text
    bad = d.find_element(By.ID, "import-refused").text
    check("1 created" in summary and "1 refused" in summary, "the upload's report gives the totals: " + summary)
    check(re.search(r"^3 phone .*valid phone number", bad, re.M), "the report names the bad line and field: " + bad.replace("\n", " | "))
    now_subs = subs()
    check(len(now_subs) == n_before + 1, "only the good line was stored")
    check(any(s.get("language") == "es" and s["groups"] == ["pdx-responders"] and s["id"] > nia for s in now_subs),
          "the good line's subscriber is listed")
    check(audit_has("ops", "/console/admin/subscribers/import", "", 200), "the upload is audited")
    sc.look("admin-import-report")

    # ---- Spanish ----
    st, body = raw(base, "GET", "/console/admin/subscribers/new", cookie + "; tocsin_lang=es")
    check(st == 200 and "Añadir suscriptor" in body and "Número de teléfono" in body, "the add form is in Spanish")

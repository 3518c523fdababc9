"""The real build/tocsin for the Python tests (the console in a browser, the
alert mail at aiosmtpd): started on a config file, waited for until /readyz
answers, stopped at the end however the test went."""
import contextlib
import os
import subprocess
import time
import urllib.request


def log_tail(tmp, n=3000):
    """The end of the daemon's log, to print when a test failed."""
    with open(os.path.join(tmp, "tocsin.log")) as f:
        return f.read()[-n:]


@contextlib.contextmanager
def running(tocsin, cfg_path, tmp, base, ready_s=20.0):
    """Runs `tocsin serve --config cfg_path` in `tmp` (log: tmp/tocsin.log)
    and yields once GET base/readyz answers 200; raises RuntimeError when it
    does not within `ready_s` or the daemon exits first."""
    with open(os.path.join(tmp, "tocsin.log"), "w") as log:
        daemon = subprocess.Popen([tocsin, "serve", "--config", cfg_path], stdout=log, stderr=log,
                                  cwd=tmp)
    try:
        end = time.monotonic() + ready_s
        while True:
            if daemon.poll() is not None:
                raise RuntimeError("tocsin exited with %d before it was ready:\n%s"
                                   % (daemon.returncode, log_tail(tmp)))
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200:
                    break
            except Exception:
                pass
            if time.monotonic() >= end:
                raise RuntimeError("tocsin not ready within %.0f s:\n%s" % (ready_s, log_tail(tmp)))
            time.sleep(0.1)
        yield daemon
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()

"""Composition figures of issues 25 and 32, on this machine's CPU-time estimate: the README
example run 3 times (trials kept), the same search with and without ``constraint=`` (energy
kept), ``usage()`` against the record, CPU joules per 0.25 s of identical work at several trial
lengths, and n_jobs threads alternating busy and sleeping trials.

Run on any tree of the project (an older one too, for a before/after):
    .venv/bin/python scripts/measure_composition.py 1|2|4|5|threads
Each item in its own process: a bug of one (open intervals) must not taint the next.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
import inspect

from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger

NEW = "study" in inspect.signature(AuditCallback.__init__).parameters

def burn(s):
    d = time.process_time() + s
    while time.process_time() < d: pass

def make(study, **kw):
    return AuditCallback(study, **kw) if NEW else AuditCallback(**kw).attach(study)

def item1(folder):
    code = ("import optuna;optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
            "from auditor.integrations.optuna import AuditCallback\n"
            "audit = AuditCallback(ledger='ledger.db', region='DE')\n"
            "study = optuna.create_study(study_name='readme')\n"
            "study.optimize(lambda t: t.suggest_float('x', -1, 1) ** 2, n_trials=20, callbacks=[audit])\n"
            "audit.flush()\n")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, env={**os.environ})
    with Ledger.open(os.path.join(folder, "ledger.db")) as l:
        return l.count_trials("readme")

def item2(folder, constraint):
    led = os.path.join(folder, f"c{bool(constraint)}.db")
    study = optuna.create_study(study_name="c")
    kw = dict(ledger=led, region="DE")
    if constraint: kw["constraint"] = "5 mg"
    audit = make(study, **kw)
    study.optimize(lambda t: (burn(0.05), t.suggest_float("x", 0, 1))[1], n_trials=40, callbacks=[audit])
    audit.close()
    with Ledger.open(led) as l:
        return sum(t.energy_joules for t in l.trials("c"))

def item4(folder):
    led = os.path.join(folder, "u.db")
    study = optuna.create_study(study_name="u")
    audit = make(study, ledger=led, region="DE")
    seen = {}
    def obj(t):
        burn(t.suggest_float("s", 0.05, 0.3))
        seen[t.number] = audit.usage(t).energy_kwh * 3.6e6
        return 0.0
    study.optimize(obj, n_trials=12, callbacks=[audit])
    audit.close()
    with Ledger.open(led) as l:
        rec = {t.number: t.energy_joules for t in l.trials("u")}
    return [seen[n] / rec[n] for n in sorted(rec)]

def item5(folder):
    out = {}
    for length in (0.05, 0.1, 0.3, 1.0):
        led = os.path.join(folder, f"s{length}.db")
        study = optuna.create_study(study_name="s")
        audit = make(study, ledger=led, region="DE")
        study.optimize(lambda t: (burn(length), 0.0)[1], n_trials=max(6, int(3 / length) if length < 1 else 4), callbacks=[audit])
        audit.close()
        with Ledger.open(led) as l:
            per = [t.energy["cpu"].joules / length * 0.25 for t in l.trials("s")]
        out[length] = (min(per), max(per))
    return out

def threads() -> None:
    """Two n_jobs threads, trials alternating 1 s of CPU work and a 1 s sleep."""
    def obj(t):
        if t.number % 2:
            time.sleep(1.0)
        else:
            d = time.thread_time() + 1.0
            while time.thread_time() < d:
                pass
        return 0.0
    d = tempfile.mkdtemp(); led = os.path.join(d, "l.db")
    study = optuna.create_study(study_name="t")
    audit = make(study, ledger=led)
    study.optimize(obj, n_trials=8, n_jobs=2, callbacks=[audit]); audit.close()
    with Ledger.open(led) as l:
        tr = {t.number: t.energy["cpu"].joules for t in l.trials("t")}
    print("busy 1 s trials: %s J; sleeping 1 s trials: %s J" % (
        ", ".join(f"{tr[n]:.2f}" for n in sorted(tr) if n % 2 == 0), ", ".join(f"{tr[n]:.2f}" for n in sorted(tr) if n % 2)))


which = sys.argv[1] if len(sys.argv) > 1 else "1"
with tempfile.TemporaryDirectory() as d:
    if which == "1": print("item1 trials in ledger after 3 runs of 20:", item1(d))
    if which == "2": print("item2 total J without / with constraint: %.3f / %.3f" % (item2(d, False), item2(d, True)))
    if which == "4":
        r = item4(d)
        print("item4 usage()/record at objective end: min %.3f median %.3f max %.3f" % (min(r), statistics.median(r), max(r)))
    if which == "5":
        for k, (a, b) in item5(d).items():
            print(f"item5 {k:.2f} s trials: CPU J per 0.25 s of work {a:.3f}..{b:.3f} (x{b/a:.2f})")
    if which == "threads": threads()

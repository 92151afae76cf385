"""Memory and time of replaying large spool files: the trials dead processes held back.

Writes FILES spool files of MIB MiB each (trials of about 1 KB, as a search with a few long
parameters leaves them), as another host's dead process would have left them, then replays them
into a fresh SQLite ledger in this process and prints the trials written, the seconds and the
process's peak memory (the replay reads a file a batch at a time, so the peak does not grow with
the files' size; before issue 28 four files of 228 MiB took 2 GB).

Usage::

    python scripts/bench_spool_replay.py [--files 4] [--mib 228] [--dir /tmp/bench-spool]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=228)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-spool"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    os.environ["XDG_STATE_HOME"] = str(args.dir / "state")

    from auditor.ledger import EnergyReading, Ledger, TrialRecord
    from auditor.ledger.checks import record_to_json
    from auditor.ledger.spool import _prefix, default_spool_dir, replay

    ledger_path = args.dir / "ledger.db"
    location = Ledger.location_of(ledger_path)
    folder = default_spool_dir()
    folder.mkdir(parents=True, mode=0o700)
    header = {"auditor_held_back": 1, "ledger": location, "host": "other", "pid": 4242,
              "sweeps": {"s": {"framework": "optuna", "attrs": {}}}}
    for index in range(args.files):
        path = folder / f"{_prefix(location)}.other.{index}.1.jsonl"
        with path.open("w") as out:
            out.write(json.dumps(header) + "\n")
            number = 0
            while out.tell() < args.mib * 2**20:
                record = TrialRecord(sweep="s", trial_key=f"{index}-{number}", number=number, state="complete",
                                     start_time=1.0, end_time=2.0, gpu_seconds=1.0, params={"lr": 1e-3, "note": "x" * 700},
                                     energy={"gpu": EnergyReading(5.0, "counter")})
                out.write(record_to_json(record) + "\n")
                number += 1
        path.chmod(0o600)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with Ledger.open(ledger_path) as ledger:
        written = replay(ledger)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.files} files of {args.mib} MiB: {written:,} trials replayed in {seconds:.0f} s; "
          f"peak memory {peak:.0f} MiB (before the replay {before:.0f} MiB)")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

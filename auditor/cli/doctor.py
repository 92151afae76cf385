"""`audit doctor`: which meters this machine offers, and what to do about the missing ones."""

from __future__ import annotations

from typing import Any

import typer

from auditor.cli.common import LEDGER_HELP, TableOrJson, console, print_json, settings_with
from auditor.errors import AuditorError, NoLedgerError
from auditor.ledger import Ledger
from auditor.ledger.spool import default_spool_dir, held_back, set_aside_files, spool_problem
from auditor.ledger.url import display, to_url
from auditor.meters.cpu import DEFAULT_WATTS_PER_LOGICAL_CPU, probe_cpu
from auditor.meters.nvml import probe_nvml
from auditor.meters.rapl import probe_rapl
from auditor.model.carbon import DEFAULT_PUE, DEFAULT_PUE_SOURCE
from auditor.model.regions import WORLD_AVERAGE, resolve_region
from auditor.model.text import counted, printable


def _ledger_report(target: str, spool_dir: str | None = None, drop_set_aside: bool = False) -> dict[str, Any]:
    to_url(target)  # a URL that cannot be used is the user's error, said as one
    try:
        with Ledger.open(target, busy_timeout_s=5.0, create=False) as ledger:
            status = (
                f"{ledger.backend}, schema {ledger.schema_version}, {counted(len(ledger.sweeps()), 'sweep')}, "
                f"{counted(ledger.count_trials(), 'trial')}"
            )
            problems = ledger.integrity_problems()
            damaged = [{"row": row, "sweep": name, "trial_key": None, "why": why} for row, name, why in ledger.damaged_sweeps()]
            damaged += [{"row": row, "sweep": sweep, "trial_key": key, "why": why} for row, sweep, key, why in ledger.damaged_rows()]
    except NoLedgerError:
        status, problems, damaged = "not created yet: the first recorded trial creates it", [], []
    except AuditorError as exc:
        return {"location": display(target), "ok": False, "status": str(exc)}
    location = Ledger.location_of(target)
    info: dict[str, Any] = {"location": display(target), "ok": not problems and not damaged, "status": status,
                            "integrity_problems": problems, "damaged_rows": damaged}
    waiting = held_back(location, spool_dir, include_live=True)
    if waiting:
        info["status"] += f"; {waiting} trials held back in {spool_dir or default_spool_dir()}, written once this ledger takes them"
    info["held_back_trials"] = waiting
    info["spool_problem"] = spool_problem(spool_dir)
    aside = set_aside_files(location, spool_dir)
    if drop_set_aside:
        for item in aside:
            item.path.unlink(missing_ok=True)
    info["set_aside"] = [{"path": str(a.path), "lines": a.lines, "why": a.why, "dropped": drop_set_aside} for a in aside]
    return info


def doctor_command(
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
    drop_set_aside: bool = typer.Option(
        False, "--drop-set-aside", help="Delete the set-aside files of held-back records the ledger must not take."
    ),
) -> None:
    """Say which energy meters this machine offers and, for each missing one, why and what to do.

    Also says whether the ledger answers, how many trials wait to be written to it, and which
    held-back records were set aside because the ledger must not take them."""
    refused: list[str] = []  # a bad setting must not stop the command that helps find it
    settings = settings_with(refused, ledger=ledger)
    nvml, rapl, cpu = probe_nvml(), probe_rapl(), probe_cpu()
    region = resolve_region(settings.region) if settings.region else WORLD_AVERAGE
    ledger_info = _ledger_report(settings.ledger, settings.spool_dir, drop_set_aside)
    if output is TableOrJson.json:
        print_json(
            {
                "gpu": {
                    "available": nvml.available, "reason": nvml.reason, "hint": nvml.hint,
                    "driver": nvml.driver, "cuda_visible_devices": nvml.cuda_visible_devices,
                    "other_pid_namespace": nvml.other_pid_namespace,
                    "devices": [g.__dict__ for g in nvml.gpus],
                },
                "rapl": {
                    "available": rapl.available, "reason": rapl.reason, "hint": rapl.hint,
                    "domains": [{"name": d.name, "path": str(d.path), "readable": d.readable} for d in rapl.domains],
                },
                "cpu": {
                    "model": cpu.model, "logical_cpus_per_socket": cpu.logical_cpus_per_socket,
                    "tdp_watts": cpu.tdp.tdp_watts if cpu.tdp else None,
                    "watts_per_logical_cpu": cpu.watts_per_logical_cpu,
                },
                "region": {"code": region.code, "g_co2e_per_kwh": region.g_co2e_per_kwh, "is_fallback": region.is_fallback},
                "ledger": ledger_info,
                "settings_refused": refused,
            }
        )
    else:
        _print_doctor(nvml, rapl, cpu, region, settings.pue, ledger_info)
        for problem in refused:
            console().print(f"Config refused, its default used here: {problem}", soft_wrap=True)
    if not ledger_info["ok"] or refused:
        raise typer.Exit(1)


def _print_doctor(nvml: Any, rapl: Any, cpu: Any, region: Any, pue: float | None, ledger_info: dict[str, Any]) -> None:
    out = console()

    def line(label: str, text: str) -> None:
        out.print(f"{label:<7}{text}", overflow="fold")

    if nvml.available and nvml.gpus:
        visible = f" (CUDA_VISIBLE_DEVICES={nvml.cuda_visible_devices})" if nvml.cuda_visible_devices is not None else ""
        line("GPU", f"NVML {nvml.nvml_version}, driver {nvml.driver}, {len(nvml.gpus)} GPUs visible{visible}")
        for gpu in nvml.gpus:
            if gpu.has_energy_counter:
                counter = f"energy counter yes ({gpu.counter_call}, {gpu.counter_call_ms:.2g} ms a read)"
            else:
                counter = "energy counter no: power will be sampled (less exact)"
            mig = f"  MIG instance: {gpu.mig_share:.0%} of its GPU's energy (flagged mig-slice-share)" if gpu.mig_share else ""
            line("", f"{gpu.index}  {gpu.name}  {counter}{mig}")
        if nvml.other_pid_namespace:
            line("", "NVML sees another PID namespace (a container): devices='auto' takes the GPUs this process")
            line("", "uses by its own account (torch's contexts, else the visible GPUs), flagged devices-assumed.")
            line("", "Pass devices=[...] to name them, or run the container with --pid=host.")
    else:
        line("GPU", f"none: {nvml.reason}")
        if nvml.hint:
            line("", nvml.hint)
    if cpu.tdp is not None:
        line("CPU", f"{cpu.model}, TDP {cpu.tdp.tdp_watts:g} W (hardware table), {cpu.watts_per_logical_cpu:.2g} W per logical CPU")
    else:
        line("CPU", f"{cpu.model}: not in the hardware table; estimates use {DEFAULT_WATTS_PER_LOGICAL_CPU:g} W per logical CPU (default)")
    if rapl.available:
        names = ", ".join(d.name for d in rapl.domains if d.readable)
        line("RAPL", f"readable: {names}")
    else:
        line("RAPL", f"not readable: {rapl.reason}.")
        if rapl.hint:
            line("", rapl.hint)
    if region.is_fallback:
        line("Region", f"not set: carbon will use the world average ({region.g_co2e_per_kwh:g} g/kWh) and say so.")
        line("", "Set one: audit config set region DE   or   AUDITOR_REGION=aws:eu-central-1")
    else:
        line("Region", f"{region.code}: {region.name}, {region.g_co2e_per_kwh:g} gCO2e/kWh ({region.describe_source()})")
    if pue is not None:
        line("PUE", f"{pue:g} (set)")
    elif region.pue is not None:
        line("PUE", f"{region.pue:g} (published for {region.code})")
    else:
        line("PUE", f"{DEFAULT_PUE:g} (default: {DEFAULT_PUE_SOURCE})")
    line("Ledger", f"{ledger_info['location']} ({ledger_info['status']})")
    if ledger_info.get("integrity_problems"):
        line("", f"damaged: SQLite's integrity check says {printable('; '.join(ledger_info['integrity_problems']))[:300]}")
    for row in ledger_info.get("damaged_rows", [])[:10]:
        if row["trial_key"] is None:
            line("", f"damaged sweep row {row['row']} ({printable(row['sweep'])[:60]}): {printable(row['why'])[:120]}; "
                     "reported without its recorded grid and budget")
        else:
            line("", f"damaged row {row['row']} (trial {printable(row['trial_key'])[:40]} of sweep {printable(row['sweep'])[:60]}): "
                     f"{printable(row['why'])[:120]}; left out of every report")
    if len(ledger_info.get("damaged_rows", [])) > 10:
        line("", f"and {len(ledger_info['damaged_rows']) - 10} more damaged rows (audit doctor --format json lists them)")
    if ledger_info.get("integrity_problems") or ledger_info.get("damaged_rows"):
        line("", "Restore the ledger from a backup, or keep it: reports name and leave out what does not read")
    elif ledger_info["ok"] and "not created" not in ledger_info["status"]:
        line("", "every trial row reads as it was written (checksums, types, ranges; on SQLite its integrity check too)")
    if ledger_info.get("spool_problem"):
        line("", ledger_info["spool_problem"])
    aside = ledger_info.get("set_aside", [])
    for item in aside[:10]:
        done = "deleted" if item["dropped"] else "set aside"
        line("", f"{done}: {item['path']} ({item['lines']} held-back lines not written: {printable('; '.join(item['why']))[:300]})")
    if len(aside) > 10:
        line("", f"and {len(aside) - 10} more set-aside files ({'deleted' if aside[0]['dropped'] else 'audit doctor --format json lists them'})")
    if ledger_info.get("set_aside") and not ledger_info["set_aside"][0]["dropped"]:
        line("", "Look at them, then delete them with: audit doctor --drop-set-aside")

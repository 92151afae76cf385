from __future__ import annotations

import pytest

from auditor.errors import InvalidInputError, UnknownHardwareError
from auditor.model.hardware import find_hardware, hardware_table, identify_hardware, search_hardware


def test_table_rows_have_sources_and_corrections() -> None:
    rows = hardware_table()
    assert all(h.source and h.tdp_watts > 0 for h in rows)
    assert find_hardware("V100 SXM2").tdp_watts == 300
    assert find_hardware("V100-PCIE").tdp_watts == 250
    assert find_hardware("H100 PCIe").tdp_watts == 350
    assert find_hardware("A100 PCIe 80GB").tdp_watts == 300


def test_exact_name_wins_over_longer_names() -> None:
    assert find_hardware("RTX 3080").name == "RTX 3080"
    assert find_hardware("rtx 3080 ti").name == "RTX 3080 TI"


def test_ambiguous_name_with_different_tdps_lists_them() -> None:
    with pytest.raises(UnknownHardwareError) as info:
        find_hardware("V100")
    assert "250 W" in str(info.value) and "300 W" in str(info.value)


def test_unknown_and_empty_names() -> None:
    with pytest.raises(UnknownHardwareError, match="audit hardware"):
        find_hardware("Voodoo 5")
    with pytest.raises(InvalidInputError, match="empty device model"):
        find_hardware(" ")


def test_identify_names_reported_by_hardware() -> None:
    assert identify_hardware("Tesla V100-SXM2-16GB", kind="gpu").tdp_watts == 300
    assert identify_hardware("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", kind="cpu").name == "Intel Xeon Gold 6148"
    assert identify_hardware("AMD EPYC 7763 64-Core Processor", kind="cpu").tdp_watts == 280
    assert identify_hardware("Some Unknown CPU", kind="cpu") is None
    assert identify_hardware("NVIDIA H100 80GB HBM3").name == "H100 SXM"
    assert identify_hardware("NVIDIA A100-SXM4-40GB").tdp_watts == 400
    assert identify_hardware("NVIDIA A100 80GB PCIe").tdp_watts == 300
    assert identify_hardware("NVIDIA A10G").tdp_watts == 150


def test_search_by_kind() -> None:
    cpus = search_hardware(kind="cpu")
    assert cpus and all(h.kind == "cpu" for h in cpus)
    assert {h.name for h in search_hardware("h100")} == {"H100 SXM", "H100 NVL", "H100 PCIe"}

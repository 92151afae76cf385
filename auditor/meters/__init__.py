"""Energy sources and what this machine offers of them.

This package reads hardware (NVML for NVIDIA GPUs, RAPL for CPUs and DRAM) and nothing else;
the probes here say which sources exist and, when one is missing, why.
"""

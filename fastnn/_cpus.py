"""How many CPUs this process may use."""

import os


def available_cpus():
    """The CPUs this process may run on: its affinity where the platform reports one (taskset, cgroups' cpusets),
    else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1

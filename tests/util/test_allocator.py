"""Freed memory kept for the next step: allocations of a size seen before stop faulting in fresh pages."""

import os
import platform
import subprocess
import sys

import pytest

BLOCKS, BLOCK_FLOATS, ROUNDS = 8, 2 << 20, 8  # 8 blocks of 8 MiB: a step's activations in miniature
PAGES_PER_ROUND = BLOCKS * BLOCK_FLOATS * 4 // 4096

# allocates, touches and frees the blocks ROUNDS times; prints the page faults of each round
ROUNDS_SCRIPT = f"""
import resource
import torch
from mae.util.allocator import keep_freed_memory
kept = keep_freed_memory()
faults = []
for _ in range({ROUNDS}):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones({BLOCK_FLOATS}) for _ in range({BLOCKS})]
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults)
"""


def round_faults(**env) -> tuple[str, list[int]]:
    done = subprocess.run([sys.executable, "-c", ROUNDS_SCRIPT], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}, timeout=120)
    kept, *faults = done.stdout.split()
    return kept, [int(f) for f in faults]


# glibc's default is adaptive (its mmap threshold grows with what was freed), so whether a default
# process reuses the blocks varies from run to run; a kept process must reuse them every time.
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_kept_memory_is_reused_instead_of_faulted_in_again():
    kept, faults = round_faults()
    assert kept == "True"
    assert faults[0] > PAGES_PER_ROUND / 2  # the first round touches fresh pages (the test can see faults)
    assert sum(faults[ROUNDS // 2:]) < PAGES_PER_ROUND / 4, faults


def test_the_environment_turns_it_off():
    kept, _ = round_faults(MAE_KEEP_FREED_MEMORY="0")
    assert kept == "False"

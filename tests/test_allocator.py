"""Freed memory kept for the next step: training steps stop faulting in fresh pages."""

import os
import platform
import subprocess
import sys

import pytest

# trains a small MAE for 8 steps and prints the page faults of the last 4
STEPS = """
import resource, sys
import torch
from mae.allocator import keep_freed_memory
torch.set_num_threads(1)
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
from mae.models.mae import MaskedAutoencoder
model = MaskedAutoencoder(img_size=128, embed_dim=192, depth=2, num_heads=3, decoder_embed_dim=128,
                          decoder_depth=1, decoder_num_heads=4)
optimizer = torch.optim.AdamW(model.parameters())
imgs, faults = torch.randn(8, 3, 128, 128), []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(imgs).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sum(faults[4:]))
"""


def late_faults(mode: str, **env) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    kept, faults = done.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_kept_memory_ends_the_page_faults_of_later_steps():
    kept, with_keep = late_faults("keep")
    _, without = late_faults("default")
    assert kept == "True"
    assert without > 2000  # glibc's default: each step's big tensors arrive as fresh pages
    assert with_keep < without / 4


def test_the_environment_turns_it_off(monkeypatch):
    from mae.allocator import keep_freed_memory

    monkeypatch.setenv("MAE_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False

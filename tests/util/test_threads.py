"""Threads and loader workers that hold up on a shared machine."""

import os
import subprocess
import sys
from dataclasses import fields

from mae.engine.config.classifier import EvalConfig, FinetuneConfig, LinprobeConfig
from mae.engine.config.pretrain import PretrainConfig
from mae.engine.config.segment import SegmentConfig
from mae.util import threads

# records OMP_WAIT_POLICY at the moment torch is first imported, then imports mae
PROBE = """
import builtins, os
real, seen = builtins.__import__, {}
def spy(name, *args, **kwargs):
    if name == "torch" and not seen:
        seen["policy"] = os.environ.get("OMP_WAIT_POLICY")
    return real(name, *args, **kwargs)
builtins.__import__ = spy
import mae
mae.MaskedAutoencoder  # the first name that needs torch loads it
print(seen["policy"])
"""


def policy_seen_by_torch(**env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.strip()


def test_openmp_waits_passively_from_before_torch_loads_unless_the_user_chose():
    assert policy_seen_by_torch() == "PASSIVE"
    assert policy_seen_by_torch(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_workers_default_from_the_cores_this_process_may_use(monkeypatch):
    # the configs' defaults are this machine's (taken when they were imported)
    expected = min(8, len(os.sched_getaffinity(0)) - 1)
    defaults = [{f.name: f.default for f in fields(config)}["num_workers"]
                for config in (PretrainConfig, FinetuneConfig, LinprobeConfig, EvalConfig, SegmentConfig)]
    assert defaults == [expected, expected, expected, min(4, expected), expected]
    for cores, workers in [(1, 0), (2, 1), (4, 3), (64, 8)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert threads.available_cores() == cores
        assert threads.default_workers() == workers

"""SIGTERM and SIGINT as a request to stop cleanly: the loop finishes the optimizer step it
is in, writes a checkpoint and ends with `TrainingStopped`; a second signal stops at once.

    stop = StopOnSignal()
    stop.install()                      # in a try whose finally calls stop.restore()
    for ...:
        ...one optimizer step...
        if stop.agreed(env, step, every=config.log_every):
            save(); raise stop.stopped(...)

Cluster schedulers preempt with SIGTERM (then SIGKILL after a grace period); a terminal's
Ctrl-C is SIGINT. Under torchrun every process gets the signal, but not at the same step,
so processes agree on the stop (a max over processes) at every `every`-th step; alone, a
process stops after the step it is in.
"""

import os
import signal
import threading

import torch

from ..compute import distributed

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(RuntimeError):
    """The run stopped on a signal after writing a checkpoint; `exit_code` is 128 + the signal,
    `resume` the command's arguments that continue the run (the caller knows how mae was started)."""

    def __init__(self, message: str, signum: int, resume: list[str]):
        super().__init__(message)
        self.exit_code = 128 + signum
        self.resume = resume


class StopOnSignal:
    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:  # the second one: stop now, as if no handler were installed
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        # os.write, not print: the signal may arrive in the middle of another write to stderr
        os.write(2, f"\n{self.name} received: stopping after this optimizer step, with a checkpoint "
                    f"(send it again to stop at once)\n".encode())

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def stopped(self, command: str, step: int, total_steps: int, checkpoint, run_dir) -> TrainingStopped:
        return TrainingStopped(f"stopped by {self.name} after step {step} of {total_steps}; checkpoint {checkpoint}",
                               self.signum, [command, "--config", str(run_dir / "config.yaml"), "--resume", "auto"])

    def agreed(self, env: distributed.DistEnv, step: int, every: int) -> bool:
        """Whether to stop after `step`: this process's request, or (under torchrun, checked
        every `every` steps) any process's. All processes answer alike."""
        if not env.distributed:
            return self.signum is not None
        if step % every:
            return False
        flag = torch.tensor(float(self.signum or 0), device=env.device)
        self.signum = int(distributed.all_reduce_max(flag, env).item()) or None
        return self.signum is not None

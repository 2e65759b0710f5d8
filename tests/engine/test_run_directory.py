"""A run directory: owned by one live run, resumed only by the same run, with metrics that
survive a torn line, and refused up front when it cannot be one."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from helpers import TINY
from mae.cli import main
from mae.engine import PretrainConfig, pretrain
from mae.engine.config.base import may_change_on_resume
from mae.engine.config.classifier import FinetuneConfig, LinprobeConfig
from mae.engine.loops.finetune import finetune
from mae.engine.loops.linprobe import linprobe
from mae.engine.run.lock import RunDirectoryBusy
from mae.engine.run.metrics import read_metrics

RUN = dict(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=16, epochs=1, blr=1.5e-4,
           warmup_epochs=1, num_workers=0, preview_images=1, log_every=1)

# holds a POSIX lock on OUT/.lock as a run does (fcntl.lockf), without importing torch
HOLDER = textwrap.dedent("""
    import fcntl, os, socket, sys, time
    fd = os.open(os.path.join(sys.argv[1], ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\\n".encode())
    print("locked", flush=True)
    time.sleep(60)
""")


def config(tmp_path, **overrides):
    return PretrainConfig(**{**RUN, "output_dir": str(tmp_path / "run"), **overrides})


@pytest.fixture
def locked_run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    yield run, holder
    holder.kill()
    holder.wait(timeout=60)


@pytest.mark.parametrize("train", ["pretrain", "finetune", "linprobe"])
def test_a_second_run_into_a_live_runs_directory_is_refused_naming_its_pid(locked_run_dir, encoder, train):
    run, holder = locked_run_dir
    common = dict(output_dir=str(run), epochs=1, warmup_epochs=0, num_workers=0)
    start = {
        "pretrain": lambda: pretrain(PretrainConfig(**dict(RUN, **common))),
        "finetune": lambda: finetune(FinetuneConfig(checkpoint=str(encoder), **common)),
        "linprobe": lambda: linprobe(LinprobeConfig(checkpoint=str(encoder), **common)),
    }[train]
    with pytest.raises(RunDirectoryBusy, match=f"in use by another run \\(pid {holder.pid} on "):
        start()
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written, nothing cleaned


def test_a_killed_run_leaves_no_lock_behind(locked_run_dir, tmp_path, one_thread):
    run, holder = locked_run_dir
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert pretrain(config(tmp_path)).step == 2
    assert pretrain(config(tmp_path, resume="auto", epochs=2)).step == 4  # released when a run ends


def test_a_resume_with_other_settings_is_refused_naming_each_old_and_new(tmp_path, one_thread):
    pretrain(config(tmp_path))
    changed = dict(seed=1, mask_ratio=0.5, norm_pix_loss=True, blr=1e-3)
    with pytest.raises(ValueError) as err:
        pretrain(config(tmp_path, resume="auto", **changed))
    message = str(err.value)
    for part in ("--seed 0 -> 1", "--mask-ratio 0.75 -> 0.5", "--norm-pix-loss False -> True",
                 "--blr 0.00015 -> 0.001", "Settings that may change on resume: ", "--num-workers"):
        assert part in message, message
    # those that may change by design: the run continues
    result = pretrain(config(tmp_path, resume="auto", epochs=2, log_every=3, keep_last=1))
    assert result.step == 4


def image_folder(root, count, name="img"):
    root.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (40, 40), (20 * i, 100, 200)).save(root / f"{name}{i}.png")
    return root


def test_a_resume_checks_the_datas_identity_and_accepts_the_same_data_by_another_path(tmp_path, one_thread,
                                                                                     monkeypatch):
    data = image_folder(tmp_path / "data", 16)
    pretrain(config(tmp_path, data=str(data), batch_size=8))
    (data / "img3.png").rename(data / "renamed.png")  # same count, another file list
    with pytest.raises(ValueError, match="data file-list digest [0-9a-f]+ -> [0-9a-f]+"):
        pretrain(config(tmp_path, data=str(data), batch_size=8, resume="auto"))
    (data / "renamed.png").rename(data / "img3.png")
    other = image_folder(tmp_path / "other", 16)
    with pytest.raises(ValueError, match=f"data {data} -> {other}"):
        pretrain(config(tmp_path, data=str(other), batch_size=8, resume="auto"))
    monkeypatch.chdir(tmp_path)  # the same folder, named relative to elsewhere
    assert pretrain(config(tmp_path, data="data", batch_size=8, resume="auto", epochs=2)).step == 4


def test_resume_repairs_a_torn_last_metrics_line_and_drops_records_past_the_checkpoint(tmp_path, one_thread):
    pretrain(config(tmp_path, epochs=2, save_every_epochs=1))
    run = tmp_path / "run"
    for name in ("ckpt-000000004",):  # make the step-2 checkpoint the newest
        os.rename(run / "checkpoints" / name, run / "checkpoints" / f".gone-{name}")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.2, "lr"')  # a disk-full crash mid-line
    result = pretrain(config(tmp_path, epochs=2, resume="auto"))
    assert result.step == 4
    records = read_metrics(run)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    text = (run / "metrics.jsonl").read_text()
    assert text.endswith("\n") and '"lr"\n' not in text


def test_a_damaged_metrics_line_inside_the_file_is_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a JSON record"):
        read_metrics(run)


def test_an_output_dir_that_is_a_file_or_not_utf8_is_refused_up_front(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"--output-dir .*file is a file, not a directory"):
        pretrain(config(tmp_path, output_dir=str(tmp_path / "file")))
    odd = str(tmp_path) + "/run-\udcff"  # how Python hands over a non-UTF-8 byte in argv
    with pytest.raises(ValueError, match=r"--output-dir .*run-\\xff is not valid UTF-8"):
        pretrain(config(tmp_path, output_dir=odd))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_eval_output_that_cannot_be_written_is_refused_before_evaluating(tmp_path, capsys, monkeypatch):
    import mae.engine.loops.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_classifier", lambda *a, **k: pytest.fail("evaluation ran"))
    (tmp_path / "results").mkdir()
    (tmp_path / "afile").write_text("x")
    for output, expected in ((tmp_path / "results", "is a directory"),
                             (tmp_path / "afile" / "r.json", "not a writable folder")):
        assert main(["eval", "--checkpoint", str(tmp_path / "missing"), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"--output {output}" in err and expected in err


@pytest.mark.parametrize("command, config_class", [("pretrain", PretrainConfig), ("finetune", FinetuneConfig),
                                                   ("linprobe", LinprobeConfig)])
def test_help_lists_the_settings_that_may_change_on_resume(command, config_class, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    start = text.index("\n  --resume auto|PATH")
    resume_help = "".join(text[start: text.index("\n  --", start + 1)].split())  # up to the next flag, unwrapped
    for name in may_change_on_resume(config_class):
        assert "--" + name.replace("_", "-") in resume_help, name

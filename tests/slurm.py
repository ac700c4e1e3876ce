"""A real one-node SLURM cluster on 127.0.0.1 for the duration of a test: munged, slurmctld, slurmd.

Everything it writes lives in a temporary folder (munge key and socket, state, spool, logs, a
job-completion file), except one link: snakemake-executor-plugin-slurm's job step calls `srun`
with the SLURM_* environment removed, so `srun` can only find the configuration at SLURM's
compiled-in default, /etc/slurm/slurm.conf. The link is made only where no configuration exists
there, and removed at the end. Jobs run as the invoking user (root, as slurmd must be).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]  # the environment that reaches it (SLURM_CONF)
    jobcomp: Path  # one line per finished job: JobId, JobState, WorkDir, ...
    logs: Path  # slurmctld.log, slurmd.log

    def finished_jobs(self) -> list[dict[str, str]]:
        """The job-completion records (SLURM's own log of every job that ran)."""
        if not self.jobcomp.is_file():
            return []
        return [
            dict(field.split("=", 1) for field in line.split() if "=" in field)
            for line in self.jobcomp.read_text().splitlines()
        ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    total_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return int(total_kb / 1024 * 0.8)


def missing_prerequisite() -> str | None:
    """Why SLURM cannot be started here, or None."""
    missing = [tool for tool in DAEMONS if shutil.which(tool) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs; run the tests as root (CI does)"
    if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists: this machine has its own SLURM, which the test will not touch"
    return None


def _host() -> str:
    """The short host name, as slurmctld and slurmd compare it with the configuration's."""
    return socket.gethostname().split(".")[0]


def _config(root: Path, socket_path: Path) -> str:
    host = _host()
    return f"""# written by tests/slurm.py: a one-node cluster on 127.0.0.1
ClusterName=jtmtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def single_node_slurm(root: Path) -> Iterator[Cluster]:
    """Start the cluster in `root`; stop every daemon it started on exit. Fails, saying why, if it
    can't: a missing tool is never a skip (one rule for sox, SLURM, Chromium and Chromaprint)."""
    reason = missing_prerequisite()
    if reason:
        pytest.fail(reason)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True)
    (root / "munge").chmod(0o700)
    key, socket_path = root / "munge" / "munge.key", root / "munge" / "munge.sock"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(_config(root, socket_path))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    linked = not DEFAULT_CONF.exists()
    started: list[str] = []
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={socket_path}",
                f"--pid-file={root / 'munge' / 'munged.pid'}",
                f"--log-file={root / 'munge' / 'munged.log'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            check=True,
        )
        started.append("munged")
        if linked:
            DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
            DEFAULT_CONF.symlink_to(conf)
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        started.append("slurmctld")
        subprocess.run(["slurmd", "-f", str(conf), "-N", _host()], check=True, env=env)
        started.append("slurmd")
        _wait_until_idle(env, root / "log")
        yield Cluster(env, root / "log" / "jobcomp.txt", root / "log")
    finally:
        _stop(root, env, socket_path, started)
        if linked and DEFAULT_CONF.is_symlink():
            DEFAULT_CONF.unlink()


def _wait_until_idle(env: dict, logs: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
        state = result.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    logs_text = "\n".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log")))
    raise RuntimeError(f"the SLURM node never became idle (state {state!r}):\n{logs_text}")


def _stop(root: Path, env: dict, socket_path: Path, started: list[str]) -> None:
    if "slurmctld" in started:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
    for pid_file in (root / "slurmd.pid", root / "slurmctld.pid"):
        _wait_for_exit(pid_file)
    if "munged" in started:
        subprocess.run(["munged", "--stop", f"--socket={socket_path}"], capture_output=True)


def _wait_for_exit(pid_file: Path, timeout: float = 20) -> None:
    """Wait for the daemon in `pid_file` to exit; kill it if it will not."""
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)

"""A real one-node SLURM cluster on 127.0.0.1 for the scheduler tests (Debian ``slurm-wlm``).

:class:`LocalSlurm` starts ``munged``, ``slurmctld`` and ``slurmd`` as root with a private
configuration, key, state and log folder (nothing under /etc is changed), and points the SLURM
client commands (``sbatch``, ``squeue``, ``scancel``) at it through ``SLURM_CONF``. Every daemon
is stopped by its pid file on exit.

``LocalSlurm.unavailable()`` says why the cluster cannot start here (package missing, not root),
so the tests skip with that reason; ``.ci/run`` installs the packages on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")
PROGRAMS = {
    "munged": "/usr/sbin/munged",
    "mungekey": "/usr/sbin/mungekey",
    "slurmctld": "/usr/sbin/slurmctld",
    "slurmd": "/usr/sbin/slurmd",
}
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """slurmctld + slurmd + munged on this machine, one partition ``debug`` (context manager)."""

    def __init__(self, workdir: Path, cpus: int | None = None, memory_mb: int = 4000):
        self.dir = Path(workdir)
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.conf = self.dir / "slurm.conf"
        self.socket = self.dir / "munge.socket"
        self.node = socket.gethostname().split(".")[0]
        self._env_before: str | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Return why a local SLURM cannot be started here (None: it can)."""
        missing = [p for p in PROGRAMS.values() if not Path(p).exists()]
        missing += [c for c in CLIENTS if shutil.which(c) is None]
        if missing:
            return (
                f"SLURM is not installed ({', '.join(missing)} missing): "
                "apt-get install slurm-wlm munge (.ci/run does)"
            )
        if os.geteuid() != 0:
            return "starting slurmd needs root (run the tests as root, as .ci/run does)"
        return None

    @property
    def env(self) -> dict[str, str]:
        """The environment the SLURM client commands need to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("state", "spool", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""\
ClusterName=quakelake-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, env={**os.environ, **self.env}, timeout=60
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}\n" + self.logs()
            )

    def logs(self) -> str:
        """Return the tail of the daemons' logs (for failure messages)."""
        out = []
        for log in sorted((self.dir / "log").glob("*.log")):
            out.append(
                f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            )
        return "\n".join(out)

    def start(self) -> LocalSlurm:
        self._write_config()
        key = self.dir / "munge.key"
        self._run(PROGRAMS["mungekey"], "--create", "--force", f"--keyfile={key}")
        key.chmod(0o600)
        self._run(
            PROGRAMS["munged"],
            "--force",
            f"--socket={self.socket}",
            f"--key-file={key}",
            f"--pid-file={self.dir}/munged.pid",
            f"--log-file={self.dir}/log/munged.log",
            f"--seed-file={self.dir}/munge.seed",
        )
        self._run(PROGRAMS["slurmctld"], "-f", str(self.conf), "-i")
        self._run(PROGRAMS["slurmd"], "-f", str(self.conf))
        self._env_before = os.environ.get("SLURM_CONF")
        os.environ.update(self.env)
        deadline = time.monotonic() + 60
        while True:
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True
            ).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the local SLURM node did not come up (state {state!r})\n{self.logs()}"
                )
            time.sleep(0.5)

    def jobs(self) -> list[str]:
        """Return the ids of the jobs queued or running."""
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
        return out.split()

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user=root"], capture_output=True)
        for name in DAEMONS:
            pidfile = self.dir / f"{name}.pid"
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if self._env_before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._env_before

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

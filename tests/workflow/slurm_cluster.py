"""A real single-node SLURM (controller and compute node) with its own munge, on localhost.

Debian's ``slurm-wlm`` and ``munge`` packages, run as root, without systemd or cgroups
(``proctrack/linuxproc``, ``task/none``) and without an accounting database. The config must
live at the default path ``/etc/slurm/slurm.conf``: the Snakemake SLURM job step drops
``SLURM_CONF`` before its inner ``srun``. Everything else (munge key and socket, state, spool,
logs) stays in a scratch folder, the ports are free ones picked at start, and every daemon is a
child process of the test, stopped by its own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# deepser test cluster, owner pid"
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")
PACKAGES = ("slurm-wlm", "munge")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).is_file()), None
    )


def missing_programs() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if _which(name) is None]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def unavailable_reason(install: bool = False) -> str | None:
    """Why a local SLURM cannot run here (None when it can). With ``install``, missing Debian
    packages are installed with apt-get first (what CI does)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (starts slurmctld, slurmd and munged, writes /etc/slurm/slurm.conf)"
    if missing_programs() and install and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
            env=env,
            capture_output=True,
            timeout=600,
        )
    missing = missing_programs()
    if missing:
        return (
            f"SLURM/munge programs missing ({', '.join(missing)}): "
            f"apt-get install {' '.join(PACKAGES)} (.ci/run does)"
        )
    if SLURM_CONF.exists():
        text = SLURM_CONF.read_text(errors="replace")
        if MARKER not in text:
            return f"{SLURM_CONF} exists and is not ours: this test does not touch a real cluster"
        owner = int(text.split(MARKER, 1)[1].split()[0])
        if owner != os.getpid() and _pid_alive(owner):
            return f"another deepser SLURM test (pid {owner}) is using {SLURM_CONF}"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 8000


def _parse_records(text: str) -> list[dict[str, str]]:
    """``key=value`` records, one per line (``scontrol -o show job``, jobcomp/filetxt)."""
    records = []
    for line in text.splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if fields:
            records.append(fields)
    return records


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop` (also after a failed start)."""

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = Path(root)
        self.cpus = cpus or max(2, os.cpu_count() or 1)
        self.procs: dict[str, subprocess.Popen] = {}
        self.wrote_conf = False
        # a short path: a unix socket's path is limited to 107 bytes
        self.munge_dir = Path(tempfile.mkdtemp(prefix="deepser-munge-"))

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def ctld_log(self) -> Path:
        return self.root / "log" / "slurmctld.log"

    @property
    def jobcomp_log(self) -> Path:
        return self.root / "log" / "jobcomp.txt"

    def config(self, ctld_port: int, slurmd_port: int) -> str:
        r = self.root
        mem = max(1000, _mem_total_mb() - 1000)
        return f"""{MARKER} {os.getpid()} (tests/workflow/slurm_cluster.py; removed when it stops)
ClusterName=deepsertest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={self.ctld_log}
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp_log}
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 (kept for the daemon)
        self.procs[name] = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out.close()

    def _wait(self, what: str, ok, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode})\n{self.logs()}")
            if ok():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def start(self) -> LocalSlurm:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        for sub in ("state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.root}/run/munged.pid",
                f"--log-file={self.root}/log/munged.log",
                f"--seed-file={self.munge_dir}/munged.seed",
            ],
        )
        self._wait("munged", self.munge_socket.exists)
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(self.config(*_free_ports(2)))
        self.wrote_conf = True
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i"])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost"])
        self._wait("the node to be idle", lambda: self.node_state() == "idle")
        return self

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=check)

    def node_state(self) -> str:
        proc = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Jobs the controller still knows (finished ones stay for MinJobAge = 3600 s: a run
        slowed by the rest of the suite took over 10 minutes, and its first job was gone)."""
        return _parse_records(self.run("scontrol", "-o", "show", "job").stdout)

    def completed_jobs(self) -> list[dict[str, str]]:
        """The job completion log (jobcomp/filetxt): every job that ended, no accounting DB."""
        if not self.jobcomp_log.exists():
            return []
        return _parse_records(self.jobcomp_log.read_text(errors="replace"))

    def stop(self) -> None:
        """Cancel remaining jobs, stop the daemons this object started, remove the config."""
        try:
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                ids = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
                if ids:
                    self.run("scancel", *ids, check=False)
                    deadline = time.monotonic() + 15
                    while (
                        time.monotonic() < deadline
                        and self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
                    ):
                        time.sleep(0.5)
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self.procs.get(name)
                if proc is None or proc.poll() is not None:
                    continue
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if self.wrote_conf and SLURM_CONF.exists():
                if f"{MARKER} {os.getpid()} " in SLURM_CONF.read_text(errors="replace"):
                    SLURM_CONF.unlink()
            self.wrote_conf = False
            shutil.rmtree(self.munge_dir, ignore_errors=True)
        running = [name for name, proc in self.procs.items() if proc.poll() is None]
        if running:
            raise RuntimeError(f"daemons still running after stop: {running}")


class BackgroundRun:
    """A command (the workflow on this cluster) started in the background on a fresh local
    SLURM: the SLURM test starts it when the test session starts and checks it at its turn, so
    the run's waiting for job states overlaps other tests instead of adding to the suite."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cluster: LocalSlurm | None = None
        self.proc: subprocess.Popen | None = None
        self.reason: str | None = None
        self.output = self.root / "snakemake.out"
        self.seconds = 0.0

    def start(self, command, required: bool) -> BackgroundRun:
        """Start the cluster, then ``command(workdir)`` (the argv to run); a cluster that cannot
        start is recorded in :attr:`reason`, not raised."""
        self.reason = unavailable_reason(install=required)
        if self.reason:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.cluster = LocalSlurm(self.root / "cluster")
        try:
            self.cluster.start()
        except Exception as exc:  # reported by the test that needs it
            self.reason = f"the local SLURM did not start: {exc}"
            return self
        self.workdir = self.root / "work"
        self.workdir.mkdir()
        self._started = time.monotonic()
        with self.output.open("w") as out:
            self.proc = subprocess.Popen(
                command(self.workdir), stdout=out, stderr=subprocess.STDOUT, text=True
            )
        return self

    def wait(self, timeout: float = 900) -> subprocess.CompletedProcess:
        """Wait for the command; its exit status and output (stdout and stderr together)."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self.seconds = time.monotonic() - self._started
        return subprocess.CompletedProcess(self.proc.args, code, self.output.read_text(), "")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.cluster is not None:
            self.cluster.stop()

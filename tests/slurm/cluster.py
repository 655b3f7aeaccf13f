"""A real one-node SLURM cluster (slurmctld, slurmd, slurmdbd with a private MariaDB, munge) from the Debian
packages, every file of it under one folder. Daemons run in the foreground as children of this process and are
stopped by their process ids.

Accounting (slurmdbd) is not optional: without `sacct` submitit cannot tell that a job died without writing its
result, and waits for it forever."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server"]
PROGRAMS = ["munged", "mariadb-install-db", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct"]


class Unavailable(Exception):
    """SLURM cannot be had on this machine (the reason says why)."""


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None]


def install_packages() -> None:
    """Install the Debian packages when they are missing and this process may (root, apt-get)."""
    if not missing_programs():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(
            f"{', '.join(missing_programs())} not found; install them with "
            f"sudo apt-get install --no-install-recommends {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise Unavailable(f"{' '.join(command[:2])} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> str:
    """`CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105`: this machine as
    slurmd sees it; the node line must match it, or slurmd refuses to register."""
    line = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return " ".join(word for word in line.split() if not word.startswith(("NodeName=", "UpTime=")))


@dataclass
class SlurmCluster:
    root: Path
    name: str = "litcifar"
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    daemons: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, and the jobs themselves) needs to find this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def _start(self, name: str, *command: str) -> None:
        log = (self.root / "log" / f"{name}.out").open("w")
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.daemons.append((name, process))

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [name for name, p in self.daemons if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = {n: (self.root / "log" / f"{n}.out").read_text()[-800:] for n, _ in self.daemons}
                raise RuntimeError(f"{what} not ready ({', '.join(dead) or 'timed out'}) under {self.root}: {logs}")
            time.sleep(0.2)

    def start(self) -> None:
        for sub in ("etc", "log", "munge", "db", "state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        db_port = self._start_mariadb()
        dbd_port = free_port()
        self._write_config(db_port, dbd_port)
        self._start("slurmdbd", "slurmdbd", "-D")
        self._wait("slurmdbd", lambda: _listening(dbd_port))
        self._start("slurmctld", "slurmctld", "-D", "-c", "-i")
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).returncode == 0)
        self._start("slurmd", "slurmd", "-D", "-N", self.node)
        self._wait("the node", lambda: self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip() == "idle")

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        munge.chmod(0o755)  # munged refuses a socket folder others may write into, and a key others may read
        key = munge / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self._start(
            "munged",
            "munged",
            "-F",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={self.root / 'log' / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        )
        self._wait("munged", lambda: (munge / "munge.socket").exists())

    def _start_mariadb(self) -> int:
        data = self.root / "db"
        command = ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db"]
        done = subprocess.run(
            [*command, "--skip-name-resolve"],  # the database serves 127.0.0.1 alone: no host name to look up
            env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")
        port = free_port()
        self._start(
            "mariadbd",
            "mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={self.root / 'mariadb.sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--pid-file={self.root / 'mariadb.pid'}",
            "--skip-grant-tables",  # no users or passwords: it listens on 127.0.0.1 for this cluster only
        )
        self._wait("mariadbd", lambda: _listening(port))
        return port

    def _write_config(self, db_port: int, dbd_port: int) -> None:
        munge_socket = self.root / "munge" / "munge.socket"
        dbd = self.conf.with_name("slurmdbd.conf")
        dbd.write_text(
            _lines(
                AuthType="auth/munge",
                AuthInfo=f"socket={munge_socket}",
                DbdHost=self.node,
                DbdAddr="127.0.0.1",
                DbdPort=dbd_port,
                SlurmUser="root",
                StorageType="accounting_storage/mysql",
                StorageHost="127.0.0.1",
                StoragePort=db_port,
                StorageUser="root",
                StorageLoc="slurm_acct_db",
                PidFile=self.root / "slurmdbd.pid",
                LogFile=self.root / "log" / "slurmdbd.log",
            )
        )
        dbd.chmod(0o600)  # slurmdbd refuses a config others may read
        self.conf.write_text(
            _lines(
                ClusterName=self.name,
                SlurmctldHost=f"{self.node}(127.0.0.1)",
                SlurmctldPort=free_port(),
                SlurmdPort=free_port(),
                SlurmUser="root",
                SlurmdUser="root",
                # cred_expire: a re-queued job may start again only that many seconds (+1) after it ended (120)
                AuthType="auth/munge",
                AuthInfo=f"socket={munge_socket},cred_expire=10",
                StateSaveLocation=self.root / "state",
                SlurmdSpoolDir=self.root / "spool",
                SlurmctldPidFile=self.root / "slurmctld.pid",
                SlurmdPidFile=self.root / "slurmd.pid",
                SlurmctldLogFile=self.root / "log" / "slurmctld.log",
                SlurmdLogFile=self.root / "log" / "slurmd.log",
                ProctrackType="proctrack/linuxproc",
                TaskPlugin="task/none",
                MpiDefault="none",
                MailProg="/bin/true",
                ReturnToService=2,
                KillWait=5,
                # cores, not memory, are what jobs hold: two jobs share the node
                SelectType="select/cons_tres",
                SelectTypeParameters="CR_Core",
                # a job that asks for more than any node has is refused by sbatch, not left pending forever
                EnforcePartLimits="ALL",
                SchedulerParameters="batch_sched_delay=0,sched_min_interval=0,sched_interval=1",
                AccountingStorageType="accounting_storage/slurmdbd",
                AccountingStorageHost="127.0.0.1",
                AccountingStoragePort=dbd_port,
                AccountingStoragePass=munge_socket,  # this connection ignores AuthInfo's socket=
                JobAcctGatherType="jobacct_gather/none",
            )
            + f"NodeName={self.node} NodeAddr=127.0.0.1 {node_hardware()} State=UNKNOWN\n"
            + "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        )

    def stop(self) -> None:
        """Cancel every job, then stop each daemon started here, last first, by its process id."""
        if any(name == "slurmctld" and p.poll() is None for name, p in self.daemons):
            self.run("scancel", f"--user={os.getuid()}", check=False)
            deadline = time.monotonic() + 30
            while self.run("squeue", "-h", check=False).stdout.strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for _, process in reversed(self.daemons):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.daemons.clear()


def _lines(**settings) -> str:
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0

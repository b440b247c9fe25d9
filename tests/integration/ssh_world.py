"""Real sshd on sandbox hosts, for the cluster managers that run their steps over ssh (MHA's
failover, ``repmgr standby switchover``).

Each host gets Debian's ``/usr/sbin/sshd`` in its own namespace, listening only on the host's
TEST-NET address, with a throwaway host key and a configuration in a temporary directory: keys
only (no password), one ``authorized_keys`` for every account.  PAM stays on: without it sshd
refuses accounts whose password is locked (``!`` in /etc/shadow), as Debian's postgres and mysql
are, even for a key.  Each account that runs ssh
gets its own copy of the client key (ssh refuses a key another account can read) and an ssh
configuration that trusts any host key and remembers none.  The daemons die with the test
process (parent-death signal); ``close()`` kills whatever is left.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from floatingip.sandbox import Sandbox
from tests.conftest import require_program, wait_until
from tests.integration.etcd_cluster import die_with_parent

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22


def require_ssh() -> None:
    """The ssh client, ssh-keygen and the daemon (Debian: openssh-client, openssh-server)."""
    require_program("ssh", package="openssh-client")
    require_program("ssh-keygen", package="openssh-client")
    require_program(SSHD, package="openssh-server")


class SshWorld:
    """sshd on ``hosts`` of ``sandbox``; ``accounts`` may log in to every one of them with the
    key that ``identity(account)`` names (``ssh -F config_file(account) ACCOUNT@ADDRESS``)."""

    def __init__(
        self, sandbox: Sandbox, hosts: Sequence[str], directory: Path, accounts: Sequence[str]
    ) -> None:
        self.sandbox, self.hosts, self.accounts = sandbox, tuple(hosts), tuple(accounts)
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def identity(self, account: str) -> Path:
        return self.directory / account / "id_ed25519"

    def config_file(self, account: str) -> Path:
        return self.directory / account / "config"

    def options(self, account: str) -> list[str]:
        """ssh's command-line options for ``account``: its key and configuration."""
        return self.client_options(self.directory, account)

    @staticmethod
    def client_options(directory: Path, account: str) -> list[str]:
        """The same, known before the world starts (for a configuration file written first)."""
        return [
            "-F",
            str(directory / account / "config"),
            "-i",
            str(directory / account / "id_ed25519"),
        ]

    def start(self) -> SshWorld:
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.directory.chmod(0o755)  # sshd reads authorized_keys as the account logging in
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run([*keygen, "-f", str(self.directory / "host_key")], check=True)
        subprocess.run([*keygen, "-f", str(self.directory / "client_key")], check=True)
        authorized = self.directory / "authorized_keys"
        shutil.copy(self.directory / "client_key.pub", authorized)
        authorized.chmod(0o644)
        for account in self.accounts:
            self._give_key(account)
        # sshd refuses to start without its privilege separation directory, which Debian's
        # service creates at its start (tmpfiles): create it the same way, empty and root's
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for host in self.hosts:
            self._start_daemon(host)
        return self

    def _give_key(self, account: str) -> None:
        entry = pwd.getpwnam(account)
        home = self.directory / account
        home.mkdir(mode=0o755, exist_ok=True)
        shutil.copy(self.directory / "client_key", self.identity(account))
        self.config_file(account).write_text(
            "Host *\n"
            f"  IdentityFile {self.identity(account)}\n"
            "  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 10\n"
            "  LogLevel ERROR\n"
        )
        for path in (home, self.identity(account), self.config_file(account)):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.identity(account).chmod(0o600)
        self.config_file(account).chmod(0o644)

    def _start_daemon(self, host: str) -> None:
        config = self.directory / f"sshd-{host}.conf"
        config.write_text(
            f"ListenAddress {self.sandbox.addresses[host]}:{SSH_PORT}\n"
            f"HostKey {self.directory / 'host_key'}\n"
            f"PidFile {self.directory / f'sshd-{host}.pid'}\n"
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}\n"
            "StrictModes no\nUsePAM yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "PrintMotd no\nPrintLastLog no\nX11Forwarding no\nLogLevel INFO\n"
            # scp (OpenSSH 9) speaks sftp: MHA copies binary logs with it
            "Subsystem sftp internal-sftp\n"
        )
        log = (self.directory / f"sshd-{host}.log").open("ab")
        self.processes[host] = subprocess.Popen(
            ["ip", "netns", "exec", self.sandbox.namespaces[host], SSHD, "-D", "-e", "-f",
             str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent,
        )  # fmt: skip
        log.close()
        address = self.sandbox.addresses[host]
        banner = lambda: (self.sandbox.ask(host, address, SSH_PORT) or "").startswith("SSH-2.0")  # noqa: E731
        if not wait_until(banner, 60):
            self.close()
            raise AssertionError(f"sshd on {host} did not start:\n{self.log(host)}")

    def log(self, host: str) -> str:
        return (self.directory / f"sshd-{host}.log").read_text(errors="replace")

    def ssh(
        self, account: str, source: str, target: str, command: str
    ) -> subprocess.CompletedProcess[str]:
        """``command`` on ``target`` over ssh, from ``source``'s namespace, as ``account``."""
        return subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[source], "runuser", "-u", account,
             "--", "ssh", *self.options(account), f"{account}@{self.sandbox.addresses[target]}",
             command],
            capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    def __enter__(self) -> SshWorld:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The README's examples run as written: every `xen-test-vm` line parses (each `a|b` alternative,
optional parts included), the host-free ones really run, the `--host root@xen1` ones run against
the lab (test_client_readme_lab.py), the curl snippet runs against the local fake of GitHub
(tests/release/fake_github.py, behind a TLS front as github.com), every `./dev TASK --option`
names a task and options tasks.py has, and every other line is in NOT_RUN with the reason."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from invoke.collection import Collection
from xen_test_vm.cli import build_parser
from xen_test_vm.ssh import parse_destination

import tasks
from tests.client.conftest import CONSOLE_SCRIPT, ROOT
from tests.client.test_client_readme_lab import RUN_HERE as RUN_IN_THE_LAB
from tests.release.fake_github import FakeGitHub

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def _lines(prefix: str) -> list[str]:
    found = []
    for block in BLOCKS:
        for line in block.splitlines():
            line = re.sub(r"^GITHUB_TOKEN=\S+ ", "", line.strip())
            if line.startswith(prefix):
                found.append(re.sub(r"\s+#.*$", "", line))
    return found


def _variants(line: str) -> list[list[str]]:
    """Every verb alternative of a synopsis line, optional [parts] included."""
    words = shlex.split(line.replace("[", "").replace("]", ""))[1:]
    choices = [w.split("|") if "|" in w and not w.startswith("{") else [w] for w in words]
    return [list(v) for v in itertools.product(*choices)]


CLIENT_LINES = _lines("xen-test-vm ")
TASK_LINES = _lines("./dev ")


def test_the_readme_has_examples() -> None:
    assert len(CLIENT_LINES) >= 10 and len(TASK_LINES) >= 8


@pytest.mark.parametrize("line", CLIENT_LINES)
def test_client_examples_parse(line: str) -> None:
    for argv in _variants(line):
        args = build_parser().parse_args(argv)
        if args.host:
            parse_destination(args.host)


def test_host_free_examples_run() -> None:
    for line in CLIENT_LINES:
        if "--host" in line:
            continue
        for argv in _variants(line):
            argv = [a for a in argv if a != "GROUP"] if "GROUP" in argv else argv
            if argv[-1] == "--only":
                argv.append("guest")
            proc = subprocess.run(
                [str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, (argv, proc.stderr)
            assert proc.stdout.strip()


@pytest.mark.parametrize("line", TASK_LINES)
def test_task_examples_name_real_tasks_and_options(line: str) -> None:
    collection = Collection.from_module(tasks)
    words = shlex.split(line)[1:]
    task_name = None
    for word in words:
        if word.startswith("--"):
            assert task_name is not None, line
            flag = word[2:].split("=")[0].replace("-", "_")
            options = {a.name for a in collection[task_name].get_arguments()}
            assert flag in options, (line, flag, sorted(options))
        elif word in collection.task_names:
            task_name = word
    assert task_name is not None, line


def test_the_readme_links_the_protocol_notes_and_its_links_resolve() -> None:
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert {"docs/PROTOCOL.md", "docs/PROTOCOL-NOTES.md"} <= set(links)
    local = [link for link in links if "://" not in link and not link.startswith("#")]
    assert [link for link in local if not (ROOT / link.split("#")[0]).exists()] == []


# The lines no test runs as written, and why (where a test runs the same thing otherwise, it says).
NOT_RUN = {
    "./dev test": "it is CI itself (.ci/run runs exactly this)",
    "./dev smoke": "boots a lab of its own beside the session's, with the shadow hypervisor (a "
    "151 s build when not cached), on CI's 2 cores; the matrix runs against the session's lab "
    "in test_client_lab.py::test_whole_smoke_matrix_passes",
    "./dev smoke --host root@xen1": "another machine's host; --host root@xen1 runs against the lab "
    "in test_client_readme_lab.py",
    "./dev smoke --host xen1 --only guest --skip checkpoint --junit smoke.xml": "another machine's "
    "host; smoke --only/--junit run against the lab in test_client_readme_lab.py",
    "pip install ./client": "test_client_packaging.py installs the client alone (a wheel of "
    "./client) into a fresh venv and runs it",
    "xen-test-vm --host root@xen1 scale --count 100 [--concurrency 4] [--memory 4] "
    "[--mode pv|pvh] [--json]": "100 VMs take minutes on the emulated lab; "
    "test_client_scale_lab.py runs scale on it with fewer",
    "./dev lab --detach": "boots a second lab beside the session's on 2 cores",
    "./dev lab --stop": "stops a detached lab, which this suite does not start",
    "./dev lab --hypervisor shadow": "boots a second lab (and builds the shadow hypervisor)",
    "./dev lab --hypervisor debian": "boots a second lab beside the session's",
    "XEN_TEST_VM_HYPERVISOR=shadow ./dev test -k lab": "the suite inside the suite",
    "./dev lab --xenstored oxenstored": "boots a second lab; ./dev test's oxenstored pass boots "
    "one",
    "./dev smoke --xenstored oxenstored": "boots a lab of its own (see ./dev smoke)",
    "XEN_TEST_VM_XENSTORED=oxenstored ./dev test -k lab": "the suite inside the suite",
    "./dev test --xenstored cxenstored": "the suite inside the suite",
    "./dev lab --hosts 2 [--detach]": "two more labs; tests/lab/test_two_hosts.py boots the pair "
    "(shadow hypervisor, skipped in CI)",
    "ssh -F ~/.cache/xen-test-vm/lab-state/ssh_config xen-lab-1 xl migrate NAME xen-lab-2": "the "
    "two-host lab (tests/lab/test_two_hosts.py)",
    "xen-test-vm --ssh-config ~/.cache/xen-test-vm/lab-state/ssh_config --host xen-lab-1 migrate "
    "NAME --destination xen-lab-2": "the two-host lab (tests/lab/test_two_hosts.py); on one host, "
    "xl's migrate --destination would remove the config the VM just arrived with",
    "./dev download --version 0.1.5 --dest /var/lib/xen/images": "writes into this machine's "
    "/var/lib/xen/images and takes no site from the environment; tests/release/"
    "test_release_download.py runs the download task against the fake GitHub",
    "./dev verify --version 0.1.5": "needs release 0.1.5 on github.com and the pinned toolchain",
    "docker build -t xen-test-vm-build . && \\": "no docker on the test machines",
    'docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/src" xen-test-vm-build': "no docker on "
    "the test machines",
    "GITHUB_TOKEN=... ./dev build release --version 0.1.5 --dry-run": "a real GitHub token and "
    "repository; tests/release/test_release_publish.py runs the release against the fake GitHub",
    "GITHUB_TOKEN=... ./dev build release --version 0.1.5": "a real GitHub token and repository; "
    "tests/release/test_release_publish.py runs the release against the fake GitHub",
}
# Lines run in the lab without one of their optional parts, and why not with it.
PART_NOT_RUN = {
    "xen-test-vm --host root@xen1 migrate xen-test-vm [--destination MEMBER]": "--destination "
    "needs a second host: the two-host lab (tests/lab/test_two_hosts.py); on one host, xl's "
    "migrate --destination would remove the config the VM just arrived with",
}
CURL_BLOCK = next(block for block in BLOCKS if block.startswith("version="))


def _all_lines() -> list[str]:
    return [
        re.sub(r"\s+#.*$", "", line.strip())
        for block in BLOCKS
        for line in block.splitlines()
        if line.strip()
    ]


def test_every_readme_line_runs_or_says_why_not() -> None:
    """Each line runs in a test here or in the lab, or NOT_RUN says why; nothing stale."""
    here = [line for line in CLIENT_LINES if "--host" not in line]  # test_host_free_examples_run
    run = {*RUN_IN_THE_LAB, *here, *CURL_BLOCK.strip().splitlines()}
    lines = _all_lines()
    assert [line for line in lines if line not in run and line not in NOT_RUN] == []
    assert [line for line in NOT_RUN if line not in lines] == []
    assert [line for line in RUN_IN_THE_LAB if line not in lines] == []
    assert not run & set(NOT_RUN) and set(PART_NOT_RUN) <= set(RUN_IN_THE_LAB)


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for github.com (curl trusts it through .curlrc's cacert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "github.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("github.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "github.pem", directory / "github.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsFront:
    """github.com's HTTPS on 127.0.0.1: TLS connections relayed to the fake's plain HTTP."""

    def __init__(self, backend: tuple[str, int], cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._backend = backend
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            with (
                self._context.wrap_socket(conn, server_side=True) as tls,
                socket.create_connection(self._backend) as plain,
            ):
                back = threading.Thread(target=_pump, args=(plain, tls), daemon=True)
                back.start()
                _pump(tls, plain)
                back.join(60)
        except OSError:  # the client went away or refused the certificate
            conn.close()

    def close(self) -> None:
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until source ends, then end sink's writing side."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        if not isinstance(sink, ssl.SSLSocket):
            sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, dict[str, str]]]:
    """The fake GitHub as https://github.com for curl: HOME's .curlrc connects github.com:443
    to the TLS front and trusts its certificate (OpenSSH aside, tools read $HOME)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/bootstrap installs it)")
    home = tmp_path / "home"
    home.mkdir()
    cert, key = _certificate(home)
    with FakeGitHub(repo="xapi-project/xen-test-vm") as fake:
        host, port = fake.web_url.removeprefix("http://").split(":")
        front = TlsFront((host, int(port)), cert, key)
        try:
            (home / ".curlrc").write_text(
                f'connect-to = "github.com:443:127.0.0.1:{front.port}"\ncacert = "{cert}"\n'
            )
            env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
            yield fake, env
        finally:
            front.close()


def _run_curl_block(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cwd.mkdir()
    return subprocess.run(
        ["sh", "-c", CURL_BLOCK], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_the_curl_snippet_downloads_and_checks_a_release(
    github: tuple[FakeGitHub, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    image = b"\x1f\x8b a released kernel"
    sums = f"{hashlib.sha256(image).hexdigest()}  test-vm.xen.gz\n".encode()
    fake.publish_directly("0.1.5", {"test-vm.xen.gz": image, "SHA256SUMS": sums})
    proc = _run_curl_block(tmp_path / "good", env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "good" / "test-vm.xen.gz").read_bytes() == image
    assert "test-vm.xen.gz: OK" in proc.stdout
    downloads = [r.path for r in fake.requests if "/releases/download/" in r.path]
    assert downloads == [
        "/xapi-project/xen-test-vm/releases/download/0.1.5/test-vm.xen.gz",
        "/xapi-project/xen-test-vm/releases/download/0.1.5/SHA256SUMS",
    ]


def test_the_curl_snippet_removes_an_image_that_does_not_match(
    github: tuple[FakeGitHub, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    sums = f"{hashlib.sha256(b'what was built').hexdigest()}  test-vm.xen.gz\n".encode()
    fake.publish_directly("0.1.5", {"test-vm.xen.gz": b"something else", "SHA256SUMS": sums})
    proc = _run_curl_block(tmp_path / "bad", env)
    assert "test-vm.xen.gz: FAILED" in proc.stdout
    assert not (tmp_path / "bad" / "test-vm.xen.gz").exists()
    assert (tmp_path / "bad" / "SHA256SUMS").exists()

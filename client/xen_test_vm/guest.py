"""Talk to a running test kernel through its xenstore home (PROTOCOL.md sections 2, 3, 5, 6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import protocol
from .errors import GuestTimeout
from .xenstore import Xenstore, domain_path

ACK_TIMEOUT = 30.0
GONE = "gone"
ACKED = "acked"
DELETED = "deleted"
PENDING = "pending"


@dataclass(frozen=True)
class Status:
    """data/test-vm/ and the advertised features of one domain."""

    domid: int
    version: str | None
    state: str | None
    armed: str | None
    resumes: str | None
    last_error: str | None
    features: dict[str, str | None]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly."""
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """How the guest answered a control/shutdown request."""

    outcome: str  # acked, deleted, replaced, gone
    value: str | None = None


class Guest:
    """One domain running the test kernel."""

    def __init__(self, xs: Xenstore, domid: int) -> None:
        self.xs = xs
        self.domid = domid
        self.home = domain_path(domid)

    def path(self, relative: str) -> str:
        """Absolute xenstore path under the guest's home."""
        return f"{self.home}/{relative}"

    def exists(self) -> bool:
        """Whether the domain still has a xenstore home."""
        return self.xs.read(self.home) is not None

    def read(self, relative: str) -> str | None:
        """A value under the guest's home."""
        return self.xs.read(self.path(relative))

    def status(self) -> Status:
        """Everything the kernel publishes."""
        values = {key: self.read(f"{protocol.STATUS}/{key}") for key in protocol.STATUS_KEYS}
        return Status(
            domid=self.domid,
            version=values["version"],
            state=values["state"],
            armed=values["armed"],
            resumes=values["resumes"],
            last_error=values["last-error"],
            features={key.rsplit("/", 1)[1]: self.read(key) for key in protocol.FEATURES},
        )

    def wait_state(self, wanted: str, timeout: float = ACK_TIMEOUT) -> Status:
        """Wait until data/test-vm/state is `wanted`."""
        self.wait_value(f"{protocol.STATUS}/state", wanted, timeout)
        return self.status()

    def wait_value(self, relative: str, wanted: str, timeout: float = ACK_TIMEOUT) -> None:
        """Wait until the key under the guest's home holds `wanted`."""
        key = self.path(relative)
        name = relative.rsplit("/", 1)[-1]
        self.xs.wait_for(
            [key, "@releaseDomain"],
            lambda: True if self.xs.read(key) == wanted else self._gone_check(f"{name} {wanted}"),
            timeout,
            f"domain {self.domid} never reached {name} {wanted!r} "
            f"({name} is {self.xs.read(key)!r})",
        )

    def _gone_check(self, waiting_for: str) -> None:
        if not self.exists():
            raise GuestTimeout(f"domain {self.domid} disappeared while waiting for {waiting_for}")

    def send_testing(
        self, message: str | bytes, timeout: float = ACK_TIMEOUT, *, gone_answers: bool = False
    ) -> bool:
        """Write control/testing so the guest may answer it, then wait for its empty-string ack.

        With gone_answers (a message that ends the domain right after its ack), the domain's
        disappearance counts as the answer. Returns whether the domain is still there.
        """
        key = self.path(protocol.TESTING)
        self.xs.write(key, message, perms=protocol.guest_writable(self.domid))

        def answered() -> bool | None:
            if self.xs.read(key) == "":
                return True
            if gone_answers and not self.exists():
                return False
            self._gone_check("the testing ack")
            return None

        result: bool = self.xs.wait_for(
            [key, "@releaseDomain"],
            answered,
            timeout,
            f"domain {self.domid} did not acknowledge control/testing",
        )
        return result

    def instruct(self, instruction: protocol.Instruction, timeout: float = ACK_TIMEOUT) -> None:
        """Send one instruction; wait for the ack."""
        self.send_testing(instruction.to_json(), timeout)

    def write_shutdown(self, request: str | bytes) -> None:
        """Write a control/shutdown request (the node stays writable by the guest)."""
        self.xs.write(
            self.path(protocol.SHUTDOWN), request, perms=protocol.guest_writable(self.domid)
        )

    def answer(self, request: str) -> Answer | None:
        """Classify control/shutdown now: None while the request is still there."""
        if not self.exists():
            return Answer(GONE)
        value = self.read(protocol.SHUTDOWN)
        if value is None:
            return Answer(DELETED)
        if value == "":
            return Answer(ACKED, "")
        if value != request:
            return Answer("replaced", value)
        return None

    def request(self, request: str, timeout: float = ACK_TIMEOUT) -> Answer:
        """Write a shutdown request and wait for the guest's answer (GuestTimeout if none)."""
        key = self.path(protocol.SHUTDOWN)
        self.write_shutdown(request)
        return self.xs.wait_for(
            [key, "@releaseDomain"],
            lambda: self.answer(request),
            timeout,
            f"domain {self.domid} did not acknowledge shutdown request {request!r}",
        )

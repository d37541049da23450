"""--timeout: one budget for a whole command, connecting to the host included."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from .toolstack import within

T = TypeVar("T")

GUEST_TIMEOUT = 30.0
TOOLSTACK_TIMEOUT = 300.0
# OpenSSH's own ConnectTimeout when the command has no budget (and its cap when it has one).
SSH_CONNECT_TIMEOUT = 10


class Timeouts:
    """How long each step of a command may take.

    Without a budget (no --timeout) every wait keeps its own default, GUEST_TIMEOUT for the
    guest and TOOLSTACK_TIMEOUT for a toolstack operation, and quick steps (reads, uploads)
    run unbounded. With one, the command as a whole must finish within it: each step gets what
    is left, so the waits give up at the same moment the command would.
    """

    def __init__(
        self,
        budget: float | None = None,
        *,
        guest: float = GUEST_TIMEOUT,
        toolstack: float = TOOLSTACK_TIMEOUT,
    ) -> None:
        self.budget = budget
        self._guest = guest
        self._toolstack = toolstack
        self._end = None if budget is None else time.monotonic() + budget

    def left(self) -> float | None:
        """Seconds left of the budget (never negative), or None without one."""
        if self._end is None:
            return None
        # Tenths: the waits' messages print the figure, and rounding down never overshoots.
        return max(math.floor((self._end - time.monotonic()) * 10) / 10, 0.0)

    def guest(self) -> float:
        """How long the next wait for the guest may last."""
        left = self.left()
        return self._guest if left is None else left

    def ssh_connect(self) -> int:
        """OpenSSH's ConnectTimeout (whole seconds, at least 1) for opening the connection."""
        left = self.left()
        return (
            SSH_CONNECT_TIMEOUT
            if left is None
            else max(1, min(SSH_CONNECT_TIMEOUT, math.ceil(left)))
        )

    def toolstack(self, what: str, operation: Callable[[], T]) -> T:
        """A toolstack operation: OperationTimeout once its default or the budget runs out."""
        left = self.left()
        if left is None:
            return within(self._toolstack, what, operation)
        return within(left, what, operation, budget=self.budget)

    def step(self, what: str, operation: Callable[[], T]) -> T:
        """Any other step: unbounded without a budget, else OperationTimeout when it runs out."""
        left = self.left()
        if left is None:
            return operation()
        return within(left, what, operation, budget=self.budget)

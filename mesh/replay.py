"""Anti-replay windows over ``(boot_epoch, seq)``, as IPsec and DTLS do (RFC 6479's idea).

Every sealed datagram carries the sender's *boot epoch* (a number the sender makes larger
every time it starts, e.g. a persisted counter) and a *sequence number* that grows by one
per datagram it sends. The receiver keeps, per sender, the highest ``(epoch, seq)`` it
accepted and a bitmask of which of the ``window`` sequence numbers below it it has seen:

- a higher epoch than seen: the sender restarted - forget the old window, accept;
- a lower epoch: reject (a datagram from before the restart);
- same epoch, seq above the highest: accept and slide the window;
- same epoch, seq within the window: accept once, reject repeats;
- same epoch, seq below the window: reject (too old to tell).

No clock is involved. The caller checks a datagram only after its MAC verified, so that
forged datagrams cannot move a window; state changes only when a datagram is accepted.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_WINDOW = 1024
DEFAULT_MAX_SENDERS = 65536


class ReplayWindow:
    """Sliding anti-replay window for one sender. Bit ``i`` of the mask is ``top - i``."""

    __slots__ = ("_epoch", "_full", "_mask", "_size", "_top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if size < 1:
            raise ValueError("a replay window holds at least one sequence number")
        self._size = size
        self._full = (1 << size) - 1
        self._epoch = -1  # nothing seen yet: any epoch is newer
        self._top = 0
        self._mask = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def epoch(self) -> int:
        """Highest boot epoch accepted (-1 before the first datagram)."""
        return self._epoch

    @property
    def top(self) -> int:
        """Highest sequence number accepted in :attr:`epoch`."""
        return self._top

    def check_and_update(self, epoch: int, seq: int) -> bool:
        """Accept ``(epoch, seq)`` (and remember it) or reject it as a replay or too old."""
        if epoch < 0 or seq < 0:
            return False
        if epoch != self._epoch:
            if epoch < self._epoch:
                return False
            self._epoch = epoch
            self._top = seq
            self._mask = 1
            return True
        if seq > self._top:
            shift = seq - self._top
            self._mask = 1 if shift >= self._size else ((self._mask << shift) | 1) & self._full
            self._top = seq
            return True
        offset = self._top - seq
        if offset >= self._size:
            return False
        bit = 1 << offset
        if self._mask & bit:
            return False
        self._mask |= bit
        return True


class ReplayGuard:
    """A :class:`ReplayWindow` per sender, in a map bounded by least-recent use.

    Size ``max_senders`` above the number of members: a sender whose window was evicted
    starts afresh, so one old datagram of it could be replayed once. Only datagrams that
    passed the membership and MAC checks reach a guard, so only members take entries.
    """

    __slots__ = ("_max", "_window", "_windows")

    def __init__(
        self, *, window: int = DEFAULT_WINDOW, max_senders: int = DEFAULT_MAX_SENDERS
    ) -> None:
        if max_senders < 1:
            raise ValueError("a replay guard tracks at least one sender")
        if window < 1:
            raise ValueError("a replay window holds at least one sequence number")
        self._window = window
        self._max = max_senders
        self._windows: OrderedDict[bytes, ReplayWindow] = OrderedDict()

    def check_and_update(self, sender: bytes, epoch: int, seq: int) -> bool:
        """:meth:`ReplayWindow.check_and_update` for ``sender``'s window."""
        window = self._windows.get(sender)
        if window is None:
            window = ReplayWindow(self._window)
            self._windows[sender] = window
            while len(self._windows) > self._max:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(sender)
        return window.check_and_update(epoch, seq)

    def forget(self, sender: bytes) -> None:
        """Drop ``sender``'s window (a revoked member)."""
        self._windows.pop(sender, None)

    def __len__(self) -> int:
        return len(self._windows)

    def __contains__(self, sender: object) -> bool:
        return sender in self._windows

"""Record every event of a simulation with the node and time it happened at."""

from __future__ import annotations

from mesh.events import BroadcastDelivered, Event
from mesh.sim import Simulation


class Recorder:
    """Every event of a simulation, with the node and time it happened at."""

    def __init__(self, sim: Simulation) -> None:
        self.events: list[tuple[int, Event, float]] = []
        sim.hooks.append(lambda i, e, t: self.events.append((i, e, t)))

    def of(self, kind: type, about: bytes | None = None) -> list[tuple[int, Event, float]]:
        return [
            (i, e, t)
            for i, e, t in self.events
            if isinstance(e, kind)
            and (about is None or (not isinstance(e, BroadcastDelivered) and e.member.key == about))
        ]

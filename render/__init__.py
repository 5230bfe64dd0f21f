"""Pure rendering of desired state into nginx configuration files.

``render(settings, workspaces, view, exclude=...)`` returns a :class:`Rendered` tree:
files by path under ``prefix/conf``, a revision hash, and each unit's status. No I/O
besides reading the package's templates; see docs/render.md.
"""

from render.model import Listen, NodeView, Rendered, UnitStatus
from render.renderer import render, revision_of
from render.templates import preload

__all__ = ["Listen", "NodeView", "Rendered", "UnitStatus", "preload", "render", "revision_of"]

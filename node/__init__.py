"""The NxMesh daemon: wires mesh/, crdt/ and render/ and owns the local nginx.

Kept import-light: the CLI imports this package on every start.
"""

from node.version import __version__ as __version__

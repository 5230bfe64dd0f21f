"""Every ``nxmesh`` subcommand: name -> where it lives and its one-line help."""

from node.cli.lazy import LazyCommand

COMMANDS: dict[str, LazyCommand] = {
    "version": LazyCommand(
        "node.cli.version_cmd:version", "Show versions of NxMesh and its parts."
    ),
}

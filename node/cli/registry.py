"""Every ``nxmesh`` subcommand: name -> where it lives and its one-line help."""

from node.cli.lazy import LazyCommand

COMMANDS: dict[str, LazyCommand] = {
    "version": LazyCommand(
        "node.cli.version_cmd:version", "Show versions of NxMesh and its parts."
    ),
    "org": LazyCommand(
        "node.cli.workspace_cmd:org", "Create, list, show, update and delete organizations."
    ),
    "workspace": LazyCommand(
        "node.cli.workspace_cmd:workspace", "Create, list, show, update and delete workspaces."
    ),
    "upstream": LazyCommand(
        "node.cli.upstream_cmd:upstream", "Create, list, show, update and delete upstreams."
    ),
    "vhost": LazyCommand(
        "node.cli.vhost_cmd:vhost", "Create, list, show, update and delete virtual hosts."
    ),
    "cert": LazyCommand(
        "node.cli.cert_cmd:cert", "List, show, upload, renew and delete certificates."
    ),
    "audit": LazyCommand(
        "node.cli.audit_cmd:audit", "Who created, changed or deleted what, newest first."
    ),
    "init": LazyCommand("node.cli.node_cmd:init", "Create a new mesh with this node in it."),
    "join": LazyCommand("node.cli.node_cmd:join", "Join a mesh with a token from `invite`."),
    "run": LazyCommand("node.cli.node_cmd:run", "Run the node daemon in the foreground."),
    "invite": LazyCommand("node.cli.node_cmd:invite", "Print a join token for a new node."),
    "status": LazyCommand("node.cli.node_cmd:status", "This node and the mesh in brief."),
    "members": LazyCommand("node.cli.node_cmd:members", "List the mesh's members."),
    "assign": LazyCommand("node.cli.node_cmd:assign", "Replace the workspaces a node serves."),
    "label": LazyCommand("node.cli.node_cmd:label", "Replace a node's labels."),
    "revoke": LazyCommand("node.cli.node_cmd:revoke", "Revoke a node for good."),
    "leave": LazyCommand("node.cli.node_cmd:leave", "Leave the mesh and stop the daemon."),
    "demo": LazyCommand("node.cli.node_cmd:demo", "Run a local 3-node mesh with real nginx."),
    "tui": LazyCommand("node.cli.tui_cmd:tui", "Open the terminal console (Textual) on the API."),
}

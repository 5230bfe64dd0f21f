"""A click group whose subcommands are imported only when they run."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a subcommand lives (``module:attribute``) and its one-line help."""

    target: str
    short_help: str


class LazyGroup(click.Group):
    """Lists subcommands from a registry; imports a subcommand's module on first use."""

    def __init__(
        self, *args: object, lazy_commands: dict[str, LazyCommand] | None = None, **kw: object
    ) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the registry so that `--help` imports no subcommand.
        rows = [(name, self.lazy_commands[name].short_help) for name in sorted(self.lazy_commands)]
        rows += [
            (name, cmd.get_short_help_str(limit=formatter.width))
            for name in sorted(super().list_commands(ctx))
            if (cmd := super().get_command(ctx, name)) is not None and not cmd.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def _load(self, name: str) -> click.Command:
        module_name, _, attr = self.lazy_commands[name].target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[name].target} is not a click command")
        return command

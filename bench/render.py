"""Rendering and loading a large fleet: ``uv run python -m bench.render --vhosts 10000``.

Builds N vhosts (half TLS, each TLS vhost with its own certificate) over 10 workspaces,
renders them, and measures with the real nginx:

- ``render_s``: render() (median of ``--repeat``; the first call, which also compiles
  the templates, is ``render_first_s``);
- ``nginx_t_s``: ``nginx -t`` on the rendered tree (median), and the same for the *naive*
  layout - the same tree post-processed so that every TLS vhost listens with ``ssl`` and
  loads its own ``ssl_certificate``, what a per-server-block template would write;
- ``reload_s``: an edit applied to a running nginx - HUP until a new worker runs;
  ``apply_s`` = render + ``nginx -t`` on the staged tree + reload, as the applier does
  them; writing the staged tree (``stage_s``, 10,000 files: file-system bound) comes on
  top in ``apply_with_stage_s``;
- ``nginx_pss_mb``: proportional set size of master + workers (/proc/PID/smaps_rollup)
  once the reload settled; RSS of the master alongside; the same for the naive layout.

JSON keys (last line): ``vhosts, render_s, nginx_t_s, naive_nginx_t_s, speedup, reload_s,
apply_s, nginx_pss_mb`` and extras (``stage_s, apply_with_stage_s, tls_vhosts, files,
conf_mb, render_first_s, write_s, nginx_t_maxrss_mb, naive_nginx_t_maxrss_mb,
old_workers_gone_s, nginx_rss_mb, naive_reload_s, naive_pss_mb, naive_rss_mb, machine``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.procs import free_ports, port_open, wait_until
from bench.report import emit, machine, progress
from crdt.schema import Certificate, MeshSettings, Upstream, VirtualHost, WorkspaceState
from render import Listen, NodeView, Rendered, render

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WORKSPACES = 10
SETTINGS = MeshSettings()


def build_fleet(vhosts: int, workspaces: int = WORKSPACES) -> dict[str, WorkspaceState]:
    """``vhosts`` vhosts: even ones TLS (own certificate, HTTP redirect, HSTS), every fifth
    with WebSockets, ten per upstream (two servers; a third of upstreams keep-alive)."""
    per = vhosts // workspaces
    pools = max(1, per // 10)
    fleet: dict[str, WorkspaceState] = {}
    for w in range(workspaces):
        entities: list[Any] = [
            Upstream.model_validate(
                {
                    "id": f"pool{u}",
                    "name": "pool",
                    "method": "least_conn" if u % 2 else "round_robin",
                    "servers": [
                        {"address": f"127.0.0.1:{10000 + u}"},
                        {"address": f"127.0.0.1:{11000 + u}", "weight": 2},
                    ],
                    "keepalive": 16 if u % 3 == 0 else 0,
                }
            )
            for u in range(pools)
        ]
        for i in range(per):
            k = w * per + i
            names = [f"site{k}.example.com", f"www.site{k}.example.com"]
            data: dict[str, Any] = {
                "id": f"v{i}",
                "name": "site",
                "server_names": names,
                "entry_points": ["http"],
                "websocket": k % 5 == 0,
                "locations": [
                    {"path": "/", "action": "proxy", "upstream": f"pool{i % pools}"},
                    {"path": "/healthz", "action": "return", "status": 200, "text": "ok"},
                ],
            }
            if k % 2 == 0:
                data["entry_points"] = ["http", "https"]
                data["tls"] = {
                    "mode": "manual",
                    "certificate": f"c{k}",
                    "redirect_http": True,
                    "hsts": {"max_age": "365d"},
                }
                entities.append(
                    Certificate.model_validate({"id": f"c{k}", "name": "c", "names": names})
                )
            entities.append(VirtualHost.model_validate(data))
        fleet[f"ws{w}"] = WorkspaceState.of(entities)
    return fleet


def install_certificates(directory: Path, fleet: Mapping[str, WorkspaceState]) -> int:
    """A self-signed EC certificate per certificate id, plus the ``_fallback`` one."""
    directory.mkdir(parents=True, exist_ok=True)
    # one key shared by all: 5,000 key generations would only slow the set-up, and nginx
    # still parses every certificate and key file of the naive layout
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    count = 0
    certificates = [c for state in fleet.values() for c in state.certificates.values()]
    for cert_id, names in [("_fallback", ["fallback.invalid"])] + [
        (c.id, list(c.names)) for c in certificates
    ]:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(key, hashes.SHA256())
        )
        (directory / f"{cert_id}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{cert_id}.key").write_bytes(key_pem)
        count += 1
    return count


def naive_layout(
    rendered: Rendered, fleet: Mapping[str, WorkspaceState], https: Listen, certs: Path
) -> dict[str, bytes]:
    """The same tree with TLS set up in every TLS vhost's own server block."""
    listen = f"    listen {https.address}:{https.port};\n"
    files = dict(rendered.files)
    for ws, state in fleet.items():
        for vid, vh in state.virtual_hosts.items():
            path = f"http.d/{ws}/vhosts/{vid}.conf"
            cert = vh.tls.certificate
            if cert is None or path not in files:
                continue
            text = files[path].decode()
            assert listen in text, path
            files[path] = text.replace(
                listen,
                f"    listen {https.address}:{https.port} ssl http2;\n"
                f'    ssl_certificate "{certs}/{cert}.crt";\n'
                f'    ssl_certificate_key "{certs}/{cert}.key";\n',
            ).encode()
    return files


def write_tree(conf: Path, files: Mapping[str, bytes]) -> None:
    if conf.exists():
        shutil.rmtree(conf)
    made: set[Path] = set()
    for rel, data in files.items():
        target = conf / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(data)


def command(prefix: Path, conf: str, *extra: str) -> list[str]:
    return [
        NGINX,
        "-p",
        f"{prefix}/",
        "-e",
        str(prefix / "logs" / "error.log"),
        "-c",
        f"{conf}/nginx.conf",
        "-g",
        "daemon off;",
        *extra,
    ]


def nginx_test(prefix: Path, conf: str = "conf") -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``nginx -t``; raises if nginx refuses the tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command(prefix, conf, "-t", "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {err.decode(errors='replace')[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.add(int(entry))
    return out


def rollup(pid: int, field: str) -> float:
    """A field of /proc/PID/smaps_rollup, in MB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(master: int) -> tuple[float, float]:
    """(PSS of master + workers, RSS of the master), MB."""
    pids = {master} | children(master)
    return sum(rollup(p, "Pss") for p in pids), rollup(master, "Rss")


class Server:
    """nginx in the foreground under ``prefix``."""

    def __init__(self, prefix: Path, listen: tuple[str, int]) -> None:
        self.prefix = prefix
        self.proc = subprocess.Popen(
            command(prefix, "conf"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_until(lambda: port_open(*listen) or self.proc.poll() is not None, 120, 0.01):
            raise RuntimeError("nginx did not start listening")
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + (prefix / "logs/error.log").read_text()[-2000:])
        # the master listens before it forks: wait for the first generation of workers
        # ("worker_processes auto" is one per CPU) so a reload is timed from a settled state
        workers = os.cpu_count() or 1
        if not wait_until(lambda: len(children(self.proc.pid)) >= workers, 120, 0.005):
            raise RuntimeError("nginx workers did not start")

    def reload(self) -> tuple[float, float]:
        """(seconds from HUP to a new worker, seconds until the old workers are gone)."""
        old = children(self.proc.pid)
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGHUP)
        if not wait_until(lambda: bool(children(self.proc.pid) - old), 120, 0.002):
            raise RuntimeError("no new workers after HUP")
        new_workers = time.perf_counter() - start
        if not wait_until(lambda: not (children(self.proc.pid) & old), 120, 0.005):
            raise RuntimeError("old workers did not exit")
        return new_workers, time.perf_counter() - start

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def edited(fleet: dict[str, WorkspaceState]) -> dict[str, WorkspaceState]:
    """One vhost's response header changed: the kind of edit the applier reacts to."""
    ws = fleet["ws0"]
    vh = ws.virtual_hosts["v1"].model_copy(update={"response_headers": {"X-Edit": "1"}})
    return {
        **fleet,
        "ws0": WorkspaceState(**{**ws.__dict__, "virtual_hosts": {**ws.virtual_hosts, "v1": vh}}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vhosts", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of render and nginx -t")
    parser.add_argument("--naive-repeat", type=int, default=1, help="runs of the naive nginx -t")
    parser.add_argument(
        "--no-naive-serve", action="store_true", help="skip running the naive layout"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to put the prefixes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nxmesh-bench-render-", dir=args.dir) as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)  # nginx workers may run as another user
        ours, naive = base / "ours", base / "naive"
        for prefix in (ours, naive):
            (prefix / "logs").mkdir(parents=True)
            (prefix / "temp").mkdir()
        certs = base / "certs"
        http_port, https_port = free_ports(2)
        http, https = Listen("127.0.0.1", http_port), Listen("127.0.0.1", https_port)

        start = time.perf_counter()
        fleet = build_fleet(args.vhosts)
        progress(f"built {args.vhosts} vhosts in {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        installed = install_certificates(certs, fleet)
        progress(f"{installed} certificates in {time.perf_counter() - start:.2f} s")

        def view_for(prefix: Path) -> NodeView:
            return NodeView(
                node="bench",
                prefix=str(prefix),
                entry_points={"http": (http,), "https": (https,)},
                certificates_dir=str(certs),
                installed_certificates=frozenset(
                    c for state in fleet.values() for c in state.certificates
                ),
                user="root" if os.geteuid() == 0 else None,
            )

        view = view_for(ours)
        start = time.perf_counter()
        rendered = render(SETTINGS, fleet, view)
        render_first = time.perf_counter() - start
        render_times, rendered = timed(lambda: render(SETTINGS, fleet, view), args.repeat)
        states = {s.state for s in rendered.units.values()}
        assert states == {"ok"}, states
        conf_mb = sum(len(b) for b in rendered.files.values()) / 2**20
        progress(
            f"render: first {render_first:.3f} s, median {statistics.median(render_times):.3f} s;"
            f" {len(rendered.files)} files, {conf_mb:.1f} MB"
        )
        write_times, _ = timed(lambda: write_tree(ours / "conf", rendered.files), 1)
        test_runs, ours_t = timed(lambda: nginx_test(ours), args.repeat)
        progress(f"nginx -t: {[round(t, 2) for t in test_runs]} s, peak {ours_t[1]:.0f} MB")

        naive_files = naive_layout(render(SETTINGS, fleet, view_for(naive)), fleet, https, certs)
        write_tree(naive / "conf", naive_files)
        naive_runs, naive_t = timed(lambda: nginx_test(naive), args.naive_repeat)
        progress(f"naive nginx -t: {[round(t, 2) for t in naive_runs]} s, peak {naive_t[1]:.0f} MB")

        server = Server(ours, (http.address, http.port))
        try:
            # the applier's path: render, stage a fresh tree, test it, swap, reload
            changed = edited(fleet)
            start = time.perf_counter()
            again = render(SETTINGS, changed, view)
            edit_render_s = time.perf_counter() - start
            assert again.revision != rendered.revision
            start = time.perf_counter()
            write_tree(ours / "conf.new", again.files)
            stage_s = time.perf_counter() - start
            staged_t_s, _ = nginx_test(ours, "conf.new")
            (ours / "conf").rename(ours / "conf.old")
            (ours / "conf.new").rename(ours / "conf")
            reload_s, settled_s = server.reload()
            apply_s = edit_render_s + staged_t_s + reload_s
            shutil.rmtree(ours / "conf.old")
            pss, rss = memory(server.proc.pid)
            progress(
                f"apply {apply_s:.2f} s = render {edit_render_s:.2f} + nginx -t {staged_t_s:.2f}"
                f" + reload to new workers {reload_s:.2f} (old gone after {settled_s:.2f});"
                f" staging the files took {stage_s:.2f} s more;"
                f" PSS {pss:.0f} MB, master RSS {rss:.0f} MB"
            )
        finally:
            server.stop()

        naive_reload = naive_pss = naive_rss = None
        if not args.no_naive_serve:
            server = Server(naive, (http.address, http.port))
            try:
                naive_reload, _ = server.reload()
                naive_pss, naive_rss = memory(server.proc.pid)
                progress(f"naive: reload {naive_reload:.2f} s; PSS {naive_pss:.0f} MB")
            finally:
                server.stop()

    nginx_t = statistics.median(test_runs)
    naive_nginx_t = statistics.median(naive_runs)

    def r(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    emit(
        {
            "vhosts": args.vhosts,
            "render_s": r(statistics.median(render_times)),
            "nginx_t_s": r(nginx_t),
            "naive_nginx_t_s": r(naive_nginx_t),
            "speedup": r(naive_nginx_t / nginx_t, 1),
            "reload_s": r(reload_s),
            "apply_s": r(apply_s),
            "stage_s": r(stage_s),
            "apply_with_stage_s": r(apply_s + stage_s),
            "nginx_pss_mb": r(pss, 1),
            "tls_vhosts": sum(
                1 for s in fleet.values() for v in s.virtual_hosts.values() if v.tls.mode != "off"
            ),
            "files": len(rendered.files),
            "conf_mb": r(conf_mb, 1),
            "render_first_s": r(render_first),
            "write_s": r(write_times[0]),
            "nginx_t_maxrss_mb": r(ours_t[1], 0),
            "naive_nginx_t_maxrss_mb": r(naive_t[1], 0),
            "old_workers_gone_s": r(settled_s),
            "nginx_rss_mb": r(rss, 1),
            "naive_reload_s": r(naive_reload),
            "naive_pss_mb": r(naive_pss, 1),
            "naive_rss_mb": r(naive_rss, 1),
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()

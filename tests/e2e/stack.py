"""The local multi-region Kubernetes stack, as the e2e suite sees it.

The stack itself is made by the shell scripts in ``hack/`` (``k8s-bins.sh`` builds the binaries,
``dev-up.sh`` / ``dev-down.sh`` start and stop a hub and three KWOK region clusters); this module
only finds it, starts the missing parts, and runs ``kubectl`` against it (reads of the simple
``kubectl get`` forms go through :mod:`api_reader`, in-process). Paths and cluster names come from
the scripts (``hack/lib.sh``), so the scripts stay the single source of truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from api_reader import ApiReader, ReadError, parse_get

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"

T = TypeVar("T")


class StackError(RuntimeError):
    """The stack could not be found or brought up; the message says what to do."""


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message holds its command and stderr.

    An AssertionError, so a test that runs a command that must work fails with kubectl's words;
    :func:`wait_for` takes it for "not yet" (an API server that is busy, or an object that is
    not there yet), as it does a missing field of a status the server has not written yet.
    """


NOT_YET = (KubectlError, subprocess.TimeoutExpired, LookupError)
"""What a probe may raise while its condition does not hold yet: kubectl failed (the object is
not there yet, the API server is busy or restarting, a request timed out), or a field of a status
the server has not written yet is missing."""

API_WAIT_SECONDS = 120.0
"""How long an object may take to reach a condition that the API server or a controller of the
same cluster sets (a CRD Established, a Node Ready, a Pod created). On an idle machine these take
well under a second; the bound is for a 2-core machine that other test sessions and builds keep
busy, where one kubectl call alone can take a few seconds."""

TEST_NAMESPACE_PREFIXES = ("e2e-", "demo-")
"""Namespaces the tests (and hack/demo.py) create for themselves, as ``<prefix>-<random>``."""


def _lib_value(name: str) -> str:
    """Read a variable as hack/lib.sh computes it (honours WATTSCALE_* overrides in the env)."""
    script = f'source {shlex.quote(str(HACK / "lib.sh"))} && printf %s "${{{name}}}"'
    return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout


def check_bins() -> Path:
    """The bin dir, if every binary is built at the pinned version; else StackError."""
    proc = subprocess.run(
        [str(HACK / "k8s-bins.sh"), "--check"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise StackError(
            "The Kubernetes binaries for the e2e stack are missing or at the wrong version:\n"
            f"{proc.stderr.strip()}\n"
            "Build them once with `make bins` (hack/k8s-bins.sh; ~18 min cold, cached after)."
        )
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class Stack:
    """A handle on the running clusters: kubeconfigs and a kubectl runner."""

    bin_dir: Path
    stack_dir: Path  # this stack's state, locks and session registry (WATTSCALE_STACK_DIR)
    clusters_dir: Path
    hub: str
    regions: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # crds/*.yaml file name -> the API server's error, for every CRD the hub rejected.
    crd_rejections: dict[str, str] = field(default_factory=dict)
    # Per kubeconfig: the in-process reader for it as last written (its mtime), replaced when a
    # restarted cluster rewrites it.
    _readers: dict[Path, tuple[int, ApiReader]] = field(default_factory=dict, repr=False)
    _readers_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_scripts(cls, bin_dir: Path) -> Stack:
        env = dict(os.environ)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return cls(
            bin_dir=bin_dir,
            stack_dir=Path(_lib_value("WATTSCALE_STACK_DIR")),
            clusters_dir=Path(_lib_value("WATTSCALE_CLUSTERS_DIR")),
            hub=_lib_value("WATTSCALE_HUB"),
            regions=_lib_value("WATTSCALE_REGIONS").split(),
            env=env,
        )

    @property
    def all_clusters(self) -> list[str]:
        return [self.hub, *self.regions]

    def kubeconfig(self, cluster: str) -> Path:
        return self.clusters_dir / f"{cluster}.kubeconfig"

    def kubectl(
        self,
        cluster: str,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (the one we built) against a cluster; raise with its stderr on failure."""
        cmd = [
            str(self.bin_dir / "kubectl"),
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig(cluster)),
            *args,
        ]
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(
                f"`kubectl {' '.join(args)}` on {cluster} failed ({proc.returncode}):\n"
                f"{proc.stderr.strip()}"
            )
        return proc

    def get_json(self, cluster: str, *args: str, timeout: float = 60) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed; raises KubectlError if it fails. One type, at most
        one name, ``-n``/``-A``/``-l``: read in-process (the same JSON, no kubectl process);
        anything else: kubectl."""
        query = parse_get(args)
        if query is None:
            out = self.kubectl(cluster, "get", *args, "-o", "json", timeout=timeout).stdout
            result: dict[str, Any] = json.loads(out)
            return result
        try:
            return self._reader(cluster).get(query, timeout)
        except ReadError as exc:
            what = f"`kubectl get {' '.join(args)}` on {cluster}"
            raise KubectlError(f"{what} failed:\n{exc}") from None

    def _reader(self, cluster: str) -> ApiReader:
        path = self.kubeconfig(cluster)
        try:
            written = path.stat().st_mtime_ns
        except OSError as exc:
            raise ReadError(f"no kubeconfig for {cluster}: {exc}") from None
        with self._readers_lock:
            kept = self._readers.get(path)
            if kept is not None and kept[0] == written:
                return kept[1]
            try:
                reader = ApiReader(path)
            except Exception as exc:  # a kubeconfig being rewritten: not yet
                raise ReadError(f"kubeconfig {path}: {exc}") from None
            self._readers[path] = (written, reader)
        if kept is not None:
            kept[1].close()
        return reader

    def apply(self, cluster: str, manifest: str | Mapping[str, Any]) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl(cluster, "apply", "-f", "-", stdin=text)

    def is_ready(self, cluster: str) -> bool:
        """True if the cluster's kubeconfig exists and its apiserver answers /readyz."""
        if not self.kubeconfig(cluster).exists():
            return False
        try:
            proc = self.kubectl(cluster, "get", "--raw", "/readyz", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    def up(self, clusters: Sequence[str], apply_crds: bool = True) -> None:
        """Run hack/dev-up.sh for these clusters (idempotent), streaming its log to stderr."""
        _run_script("dev-up.sh", clusters, {"WATTSCALE_APPLY_CRDS": "1" if apply_crds else "0"})

    def down(self, clusters: Sequence[str]) -> None:
        _run_script("dev-down.sh", clusters)

    # ---- a member cluster going away and coming back (fault tests) ----------------------------
    # kwokctl's binary runtime keeps a stopped cluster's directory: its ports (kwok.yaml), its
    # certificates (pki/) and its etcd data, so `start` brings back the same API server at the
    # same address with the same objects, and the kubeconfig (and the hub's Secret made from it)
    # stays valid: nothing needs refreshing.

    @property
    def kwok_workdir(self) -> Path:
        return Path(_lib_value("WATTSCALE_KWOK_WORKDIR"))

    def _kwokctl(self, name: str, *args: str) -> None:
        """Run kwokctl on one of our clusters as hack/dev-up.sh does, holding the dev-stack lock.

        The daemons `start` forks inherit no descriptor beyond stdio (``close_fds``, and their
        output goes to a log file, not a pipe we would wait on), so they hold no caller's lock.
        """
        if name not in self.all_clusters:
            raise StackError(f"{name} is not a cluster of this stack ({self.all_clusters})")
        env = {**self.env, "KWOK_WORKDIR": str(self.kwok_workdir)}
        log = self.stack_dir / f"kwokctl-{name}.log"
        cmd = [str(self.bin_dir / "kwokctl"), "-v", "WARN", "--name", name, *args]
        with self._stack_locked(), log.open("ab") as out:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                close_fds=True,
                check=False,
                timeout=360,
            )
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise StackError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{tail}")

    def stop_cluster(self, name: str) -> None:
        """Stop a cluster's processes (etcd, apiserver, controllers, kwok); keep its data.

        Use :meth:`cluster_stopped` instead, unless you hold the sessions lock yourself.
        """
        self._kwokctl(name, "stop", "cluster")
        wait_for(f"{name}'s API server to stop answering", lambda: not self.is_ready(name))

    def start_cluster(self, name: str, timeout: float = API_WAIT_SECONDS) -> None:
        """Start a stopped cluster again and wait until its API server answers /readyz."""
        self._kwokctl(name, "start", "cluster", "--wait", f"{int(timeout)}s", "--timeout", "5m")
        wait_for(f"{name}'s API server to answer again", lambda: self.is_ready(name), timeout)

    @contextlib.contextmanager
    def cluster_stopped(self, name: str) -> Iterator[None]:
        """A member cluster stopped for the body of the ``with``, and always started again.

        Holds the sessions lock throughout: another test session joining meanwhile would take
        the stopped cluster for one it must start (and, as the last to leave, delete). Take
        :meth:`regions_owned` first (``open_world`` does), so no other operator world runs
        while a member is down; and keep the body short.
        """
        if name == self.hub:
            raise StackError("the hub is not a member cluster; stopping it stops every world")
        with self._sessions_locked():
            self.stop_cluster(name)
            try:
                yield
            finally:
                self.start_cluster(name)

    @contextlib.contextmanager
    def _stack_locked(self) -> Iterator[None]:
        """hack/lib.sh's lock_stack: no dev-up or dev-down runs meanwhile."""
        with _flocked(self.stack_dir / "dev-stack.flock"):
            yield

    def apply_file(self, cluster: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`kubectl apply -f path` (server-side); returns the result instead of raising."""
        return self.kubectl(
            cluster,
            *("apply", "--server-side", "--force-conflicts", "--field-manager=wattscale-e2e"),
            *args,
            *("-f", str(path)),
            check=False,
        )

    def conditions(self, cluster: str, *what: str) -> dict[str, str]:
        """``{type: status}`` of one object's ``status.conditions`` ({} while it has none)."""
        status = self.get_json(cluster, *what).get("status") or {}
        return {c["type"]: c["status"] for c in status.get("conditions") or []}

    def wait_condition(
        self, cluster: str, what: str, type_: str, timeout: float = API_WAIT_SECONDS
    ) -> None:
        """Poll until the object ``what`` (e.g. ``crd/NAME``) has condition ``type_`` True.

        Not ``kubectl wait --for=condition=...``: that fails at once, instead of waiting, while
        the API server has not written the object's first condition yet (``.status.conditions
        accessor error: <nil>``). Here a missing object, status or condition is "not yet".
        """
        wait_for(
            f"{what} on {cluster} to be {type_}",
            lambda: self.conditions(cluster, what).get(type_) == "True",
            timeout,
        )

    def apply_crds(self) -> dict[str, str]:
        """Apply every crds/*.yaml to the hub, wait until Established; return the rejections."""
        rejected = {}
        for path in sorted((REPO / "crds").glob("*.yaml")):
            proc = self.apply_file(self.hub, path)
            if proc.returncode != 0:
                rejected[path.name] = proc.stderr.strip()
                continue
            name = self.kubectl(self.hub, "get", "-f", str(path), "-o", "name").stdout.strip()
            self.wait_condition(self.hub, name, "Established")
        self.crd_rejections = rejected
        return rejected

    # ---- sharing the stack between test sessions ----------------------------------------------
    # Several pytest sessions (two terminals, two developers on one machine) may use the stack at
    # once. Each registers its pid under e2e-sessions/; clusters a session had to start are noted
    # in e2e-sessions/started, and the LAST session to leave stops them. Clusters that were
    # already running when the first session came (e.g. from `make dev-up`) are never stopped.

    @property
    def _sessions_dir(self) -> Path:
        return self.stack_dir / "e2e-sessions"

    @contextlib.contextmanager
    def _sessions_locked(self) -> Iterator[Path]:
        d = self._sessions_dir
        with _flocked(d / ".lock"):
            yield d

    @contextlib.contextmanager
    def regions_owned(self) -> Iterator[None]:
        """Hold the hub's Regions for one test module at a time.

        Regions are cluster-scoped and named after the stack's regions, so two test sessions
        that each run an operator world (e.g. two developers' `pytest tests/e2e`) would overwrite
        each other's feeds. They take turns on this lock instead.
        """
        with _flocked(self.stack_dir / "regions-owner.flock"):
            yield

    def join(self) -> list[str]:
        """Bring the stack up (reusing what runs) and register this session; the started ones."""
        with self._sessions_locked() as d:
            started = [c for c in self.all_clusters if not self.is_ready(c)]
            if started:
                # Recorded first: if dev-up fails half-way, the last session still cleans up.
                noted = _read_lines(d / "started")
                (d / "started").write_text("".join(f"{c}\n" for c in {*noted, *started}))
            alone = not self._live_sessions(d)
            (d / str(os.getpid())).touch()
            # dev-up is idempotent: for running clusters it only re-applies nodes and Secrets.
            self.up(self.all_clusters, apply_crds=False)
            # The CRDs are applied here instead, so that a CRD the API server rejects fails one
            # test (showing the server's message) rather than the whole session.
            self.apply_crds()
            if alone:
                self.sweep_leftovers()
            return started

    def sweep_leftovers(self, prefixes: tuple[str, ...] = TEST_NAMESPACE_PREFIXES) -> list[str]:
        """Delete the namespaces a killed test session left behind; ``cluster/namespace`` each.

        A session killed mid-test (Ctrl-C twice, a lost terminal) never runs its teardown: its
        InferenceDeployments keep holding GPU quota, with finalizers no operator will remove, in
        clusters that outlive it. Called only when no other session is alive, so nothing here
        is in use. Only namespaces named with ``prefixes`` (our own test namespaces) are touched.
        """
        swept = []
        for cluster in self.all_clusters:
            items = self.get_json(cluster, "namespaces").get("items", [])
            for ns in (i["metadata"]["name"] for i in items):
                if not ns.startswith(prefixes):
                    continue
                if cluster == self.hub:
                    self._drop_finalizers(ns)
                self.kubectl(cluster, "delete", "namespace", ns, "--wait=false", check=False)
                swept.append(f"{cluster}/{ns}")
        if swept:
            print(f"removed {len(swept)} namespaces a dead test session left: {swept[:10]}",
                  file=sys.stderr)  # fmt: skip
        return swept

    def _drop_finalizers(self, namespace: str) -> None:
        found = self.kubectl(
            self.hub, "get", "inferencedeployments", "-n", namespace, "-o", "name", check=False
        )
        for name in found.stdout.split():
            self.kubectl(
                self.hub, "patch", name, "-n", namespace, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip

    @staticmethod
    def _live_sessions(d: Path) -> list[Path]:
        """The sessions registered in ``d`` whose process is alive (not this one)."""
        return [
            p
            for p in d.iterdir()
            if p.name.isdigit() and int(p.name) != os.getpid() and _alive(int(p.name))
        ]

    def leave(self, keep: bool = False) -> list[str]:
        """Unregister this session; if it was the last one, stop what sessions started."""
        with self._sessions_locked() as d:
            (d / str(os.getpid())).unlink(missing_ok=True)
            others = self._live_sessions(d)
            for p in d.iterdir():
                if p.name.isdigit() and p not in others:
                    p.unlink(missing_ok=True)  # a session that died without leaving
            if others or keep:
                return []
            started = sorted(_read_lines(d / "started"))
            if started:
                self.down(started)
            (d / "started").unlink(missing_ok=True)
            return started


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_lines(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_script(script: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    cmd = [str(HACK / script), *args]
    proc = subprocess.run(
        cmd, stdout=sys.stderr, stderr=sys.stderr, env={**os.environ, **(env or {})}, check=False
    )
    if proc.returncode != 0:
        raise StackError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}")


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = API_WAIT_SECONDS,
    interval: float = 0.5,
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` s.

    A probe that raises one of :data:`NOT_YET` is asked again; any other exception (e.g. an
    assertion that the operator process is still alive) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    error: BaseException | None = None
    while True:
        try:
            last = probe()
            error = None
        except NOT_YET as exc:
            last, error = None, exc
        if last:
            return last
        if time.monotonic() > deadline:
            why = f"; last try: {str(error).strip()[:600]}" if error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{why}")
        time.sleep(interval)

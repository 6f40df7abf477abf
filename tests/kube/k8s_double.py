"""A Kubernetes API double and a fake kubelet, enough for KubeSpawner to run real sessions.

The API double is a real HTTP server (aiohttp) on 127.0.0.1. It stores namespaces, pods,
persistent volume claims, events and nodes, and answers what KubeSpawner and the portal
call: create (409 when the name exists, 404 when the namespace does not), read, delete,
list with label and field selectors, and watch from a ``resourceVersion`` (every change
bumps it; a watch ends at its ``timeoutSeconds``). Every request is logged and every pod
manifest is kept exactly as received, so tests can assert on what the hub asked for.

The fake kubelet runs each pod's real command (a ``jupyterhub-singleuser``) as a local
process on a loopback address of its own (127.0.0.N, so the manifest's port works for every
pod), with its own HOME and JUPYTER_RUNTIME_DIR and ``--allow-root`` when the tests run as
root. It reports ``Running``, the pod IP and ready containers once the process is started,
``terminated`` with the exit code when it ends, records kubelet-like events, and ends a pod
after its ``activeDeadlineSeconds``.

Services: a test may give the double a Service's cluster DNS names and port with the local
address that stands for its pods (:meth:`KubeDouble.add_service`). Pod processes then resolve
``<name>``, ``<name>.<ns>``, ``<name>.<ns>.svc`` and ``<name>.<ns>.svc.cluster.local`` on that
port to the local address and port (the cluster DNS and kube-proxy's translation, done by a
``sitecustomize`` module the kubelet puts on the pod's PYTHONPATH; Python processes only).
:meth:`KubeDouble.exec` runs a command with a pod's environment, as ``kubectl exec`` does.

What it does NOT check (covered elsewhere or not at all, and so not proven by tests that
use it): scheduling (no pod is bound to a node; node selectors, tolerations, taints,
affinity and resource fit are not evaluated), device plugins (no GPU or MIG device is
given to a process), image pulls (the image is never fetched; the local Python runs the
command), authentication (every request is taken to come from one service account), RBAC
unless the test gives the double a service account's grants (:func:`grants_from_manifests`
reads them from rendered Roles, ClusterRoles and their bindings; a request they do not allow
gets the API server's 403 and is recorded in ``denied``), network policies, PVC binding
and provisioning (claims are stored, never bound; volumes are not mounted), admission
(no defaulting, validation webhooks or pod security admission), quantities and name rules
(values are stored as sent; see the kubernetes-validate and checkov tests for schema and
security checks of the manifests), security contexts (the process runs as the test user),
resource limits (no cgroups), and graceful termination (a deleted pod is gone at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import shutil
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from aiohttp import web

NAMESPACED = {"pods": "Pod", "persistentvolumeclaims": "PersistentVolumeClaim", "events": "Event"}
CLUSTER = {"namespaces": "Namespace", "nodes": "Node"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field(obj: dict, dotted: str):
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def matches(obj: dict, label_selector: str | None, field_selector: str | None) -> bool:
    """Equality-based selectors (``a=b``, ``a==b``, ``a!=b``, ``a``), comma = and."""
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if str(_field(obj, key)) == value:
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if str(_field(obj, key)) != value:
                return False
    return True


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    return web.json_response({**body, "reason": reason, "message": message}, status=code)


@dataclass(frozen=True)
class Grant:
    """One RBAC rule a service account holds: in ``namespace``, or cluster-wide (None)."""

    namespace: str | None
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def allows(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if not ({"", "*"} & set(self.api_groups)):
            return False  # the double serves the core group only
        if not ({resource, "*"} & set(self.resources)) or not ({verb, "*"} & set(self.verbs)):
            return False
        return not self.resource_names or name in self.resource_names


def grants_from_manifests(objects: list[dict], service_account: str, namespace: str):
    """The grants of ``namespace``/``service_account`` in rendered RBAC objects: Roles bound
    by RoleBindings (in their namespace), ClusterRoles bound by ClusterRoleBindings
    (cluster-wide) or by RoleBindings (in the binding's namespace)."""
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    grants: list[Grant] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
        if subject not in binding.get("subjects", []):
            continue
        ref = binding["roleRef"]
        bound_in = (
            binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        )
        role_namespace = bound_in if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_namespace, ref["name"]))
        if role is None:
            continue  # a binding to a role the chart does not create grants nothing
        for rule in role.get("rules", []):
            grants.append(
                Grant(
                    bound_in,
                    tuple(rule.get("apiGroups", [])),
                    tuple(rule.get("resources", [])),
                    tuple(rule.get("verbs", [])),
                    tuple(rule.get("resourceNames", [])),
                )
            )
    return grants


def request_verb(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        return "get" if name else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


SERVICE_RESOLVER = '''"""The API double's cluster DNS and Service translation, for pod Python."""
import json
import os
import socket

_services = json.loads(os.environ.get("KUBE_DOUBLE_SERVICES", "{}"))
_getaddrinfo = socket.getaddrinfo


def _resolve(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    found = _services.get(f"{name}:{port}")
    if found:
        return _getaddrinfo(found[0], found[1], *args, **kwargs)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _resolve
'''


class KubeDouble:
    """The API double with its fake kubelet; use :func:`running_double` from sync tests."""

    def __init__(self, workdir: Path, namespaces: tuple[str, ...] = ("default",)) -> None:
        self.workdir = workdir
        # RBAC: None lets every request through; a list of grants allows those only.
        self.grants: list[Grant] | None = None
        self.subject = "system:serviceaccount:default:default"
        self.denied: list[tuple[str, str]] = []
        self.services: dict[str, list] = {}  # "host:port" -> [local ip, local port]
        self.environments: dict[tuple[str, str], tuple[dict[str, str], Path]] = {}
        self.objects: dict[str, dict[tuple[str | None, str], dict]] = {
            kind: {} for kind in (*NAMESPACED, *CLUSTER)
        }
        self.history: list[tuple[int, str, str, dict]] = []  # (rv, kind, type, object)
        self.requests: list[tuple[str, str]] = []
        self.received_pods: list[dict] = []
        self.processes: dict[str, asyncio.subprocess.Process] = {}  # by pod uid
        self._rv = itertools.count(1)
        self._ips = itertools.count()
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        for name in namespaces:
            self.put("namespaces", {"metadata": {"name": name}, "status": {"phase": "Active"}})

    # -- store ------------------------------------------------------------------------

    def put(self, kind: str, obj: dict, event: str = "ADDED") -> dict:
        """Store ``obj`` as the API would (uid, resourceVersion, ...) and tell watchers."""
        meta = obj.setdefault("metadata", {})
        obj["kind"] = (NAMESPACED | CLUSTER)[kind]
        obj["apiVersion"] = "v1"
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[kind][(meta.get("namespace"), meta["name"])] = obj
        self._notify(kind, event, obj)
        return obj

    def _notify(self, kind: str, event: str, obj: dict) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, kind, event, copy.deepcopy(obj)))
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def add_node(self, name: str, labels: dict[str, str], allocatable: dict[str, str]) -> dict:
        """A ready node; e.g. ``allocatable={"nvidia.com/gpu": "8", "cpu": "96"}``."""
        node = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {},
            "status": {
                "allocatable": dict(allocatable),
                "capacity": dict(allocatable),
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        return copy.deepcopy(self.put("nodes", node))

    def pods(self) -> dict[str, dict]:
        return {name: copy.deepcopy(p) for (_ns, name), p in self.objects["pods"].items()}

    def pvcs(self) -> dict[str, dict]:
        return {
            n: copy.deepcopy(p) for (_ns, n), p in self.objects["persistentvolumeclaims"].items()
        }

    def record_event(self, pod: dict, reason: str, message: str, kind: str = "Normal") -> None:
        meta = pod["metadata"]
        self.put(
            "events",
            {
                "metadata": {
                    "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                    "namespace": meta["namespace"],
                },
                "involvedObject": {
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "lastTimestamp": now(),
                "firstTimestamp": now(),
                "count": 1,
                "source": {"component": "fake-kubelet"},
            },
        )

    def add_service(self, name: str, namespace: str, port: int, ip: str, target_port: int):
        """Pods reach Service ``name`` on ``port`` at ``ip``:``target_port`` (see above)."""
        for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc"):
            for full in (host, f"{host}.cluster.local") if host.endswith(".svc") else (host,):
                self.services[f"{full}:{port}"] = [ip, target_port]

    async def exec(self, name: str, argv: list[str], namespace: str | None = None, timeout=60):
        """``kubectl exec``: run ``argv`` with the environment of running pod ``name``;
        returns (exit code, stdout, stderr)."""
        key = next(k for k in self.environments if k[1] == name and namespace in (None, k[0]))
        env, home = self.environments[key]
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=home,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
        return process.returncode, out.decode(), err.decode()

    # -- HTTP -------------------------------------------------------------------------

    async def start(self) -> str:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/v1/{rest:.*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop every pod process and the HTTP server (safe to call twice)."""
        for uid in list(self.processes):
            await self._kill(uid)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        parts = request.match_info["rest"].strip("/").split("/")
        namespace = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        kind, name = parts[0], (parts[1] if len(parts) > 1 else None)
        resource = "/".join([kind, *parts[2:3]])  # pods/log, pods/exec: subresources
        if self.grants is not None:
            watch = request.query.get("watch", "").lower() in ("true", "1")
            verb = request_verb(request.method, name, watch)
            if not any(g.allows(verb, resource, namespace, name) for g in self.grants):
                self.denied.append((request.method, request.path_qs))
                where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
                return status(
                    403,
                    "Forbidden",
                    f'{kind} is forbidden: User "{self.subject}" cannot {verb} resource '
                    f'"{resource}" in API group "" {where}',
                )
        if kind not in self.objects:
            return status(404, "NotFound", f"the double does not serve {kind!r}")
        if request.method == "GET" and name is None:
            if request.query.get("watch", "").lower() in ("true", "1"):
                return await self._watch(request, kind, namespace)
            return self._list(request, kind, namespace)
        if request.method == "POST" and name is None:
            return await self._create(request, kind, namespace)
        found = self.objects[kind].get((namespace, name))
        if found is None:
            return status(404, "NotFound", f'{kind} "{name}" not found')
        if request.method == "GET":
            return web.json_response(found)
        if request.method == "DELETE":
            del self.objects[kind][(namespace, name)]
            found["metadata"]["resourceVersion"] = str(next(self._rv))
            self._notify(kind, "DELETED", found)
            if kind == "pods":
                uid = found["metadata"]["uid"]
                asyncio.get_running_loop().create_task(self._kill(uid))
            return web.json_response(found)
        return status(405, "MethodNotAllowed", f"{request.method} is not supported")

    def _selected(self, request: web.Request, kind: str, namespace: str | None, obj: dict):
        return (namespace is None or obj["metadata"].get("namespace") == namespace) and matches(
            obj, request.query.get("labelSelector"), request.query.get("fieldSelector")
        )

    def _list(self, request: web.Request, kind: str, namespace: str | None) -> web.Response:
        items = [
            o for o in self.objects[kind].values() if self._selected(request, kind, namespace, o)
        ]
        rv = str(self.history[-1][0]) if self.history else "0"
        return web.json_response(
            {
                "kind": f"{(NAMESPACED | CLUSTER)[kind]}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, kind: str, namespace: str | None):
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 30)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + timeout
        position = 0
        with contextlib.suppress(ConnectionResetError):
            while True:
                for rv, what, event, obj in self.history[position:]:
                    if (
                        what == kind
                        and rv > since
                        and self._selected(request, kind, namespace, obj)
                    ):
                        line = json.dumps({"type": event, "object": obj}) + "\n"
                        await response.write(line.encode())
                position = len(self.history)
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=left)
        return response

    async def _create(self, request: web.Request, kind: str, namespace: str | None):
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if not name:
            return status(422, "Invalid", "metadata.name is required")
        if namespace is not None and (None, namespace) not in self.objects["namespaces"]:
            return status(404, "NotFound", f'namespaces "{namespace}" not found')
        if (namespace, name) in self.objects[kind]:
            return status(409, "AlreadyExists", f'{kind} "{name}" already exists')
        if kind == "pods":
            self.received_pods.append(copy.deepcopy(body))
        obj = copy.deepcopy(body)
        if namespace is not None:
            obj["metadata"]["namespace"] = namespace
        obj.setdefault("status", {})
        obj["status"].setdefault(
            "phase", "Pending" if kind in ("pods", "persistentvolumeclaims") else "Active"
        )
        obj = self.put(kind, obj)
        if kind == "pods":
            asyncio.get_running_loop().create_task(self._run_pod(namespace, name))
        return web.json_response(obj, status=201)

    # -- fake kubelet -----------------------------------------------------------------

    def _update_pod(self, key: tuple[str, str], uid: str, status_update: dict) -> dict | None:
        """Update the pod's status, unless it was deleted (a new pod of the same name has
        another uid: a slowly dying old process must not change it)."""
        pod = self.objects["pods"].get(key)
        if pod is None or pod["metadata"]["uid"] != uid:
            return None
        pod = copy.deepcopy(pod)
        pod["status"].update(status_update)
        return self.put("pods", pod, "MODIFIED")

    def _free_address(self, container: dict) -> str:
        """The next 127.0.0.N where the container's ports are free (other test runs on
        this machine may hold some)."""
        ports = [p["containerPort"] for p in container.get("ports", [])]
        for _ in range(250):
            ip = f"127.0.0.{2 + next(self._ips) % 250}"
            try:
                for port in ports:
                    with socket.socket() as probe:
                        probe.bind((ip, port))
            except OSError:
                continue
            return ip
        raise RuntimeError("no loopback address with the pod's ports free")

    async def _run_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        pod = self.objects["pods"][key]
        uid = pod["metadata"]["uid"]
        container = pod["spec"]["containers"][0]
        ip = self._free_address(container)
        self.record_event(
            pod, "Scheduled", f"Successfully assigned {namespace}/{name} (fake, no scheduler)"
        )
        self.record_event(
            pod, "Pulled", f'Container image "{container["image"]}" is not pulled (fake)'
        )
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        executable = shutil.which(argv[0], path=path) if argv else None
        if executable is None:
            self.record_event(pod, "Failed", f"executable not found: {argv[:1]}", "Warning")
            self._update_pod(key, uid, {"phase": "Failed"})
            return
        if os.geteuid() == 0 and Path(executable).name == "jupyterhub-singleuser":
            argv.append("--allow-root")  # images run it as jovyan; the tests may be root
        home = self.workdir / "pods" / name
        runtime = home / ".local" / "share" / "jupyter" / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in ("LANG",) if k in os.environ} | {"PATH": path}
        env |= {e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e}
        env |= {"HOME": str(home), "JUPYTER_RUNTIME_DIR": str(runtime)}
        if self.services:
            shim = home / ".kube-double"
            shim.mkdir(exist_ok=True)
            (shim / "sitecustomize.py").write_text(SERVICE_RESOLVER)
            inherited = os.environ.get("PYTHONPATH")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), inherited]))
            env["KUBE_DOUBLE_SERVICES"] = json.dumps(self.services)
        elif os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if "JUPYTERHUB_SERVICE_URL" in env:
            url = urlparse(env["JUPYTERHUB_SERVICE_URL"])
            env["JUPYTERHUB_SERVICE_URL"] = urlunparse(url._replace(netloc=f"{ip}:{url.port}"))
        with (home / "container.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                executable,
                *argv[1:],
                env=env,
                cwd=home,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.processes[uid] = process
        self.environments[key] = (env, home)
        self.record_event(
            pod, "Started", f"Started container {container['name']} as process {process.pid}"
        )
        started = now()
        self._update_pod(
            key,
            uid,
            {
                "phase": "Running",
                "podIP": ip,
                "hostIP": "127.0.0.1",
                "startTime": started,
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": True,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            },
        )
        deadline = pod["spec"].get("activeDeadlineSeconds")
        try:
            code = await asyncio.wait_for(process.wait(), timeout=deadline)
            reason, phase = ("Completed", "Succeeded") if code == 0 else ("Error", "Failed")
        except TimeoutError:
            await self._kill(uid)
            code, reason, phase = 137, "DeadlineExceeded", "Failed"
            self.record_event(
                pod,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
                "Warning",
            )
        self.processes.pop(uid, None)
        self._update_pod(
            key,
            uid,
            {
                "phase": phase,
                "reason": reason,
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": False,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"terminated": {"exitCode": code, "reason": reason}},
                    }
                ],
            },
        )

    async def _kill(self, uid: str) -> None:
        process = self.processes.pop(uid, None)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class ThreadedDouble:
    """The double running on its own event loop in a thread, for tests that block."""

    def __init__(self, double: KubeDouble) -> None:
        self.double = double
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, function, *args):
        """Run ``function(*args)`` on the double's loop (its state is not thread-safe)."""

        async def run():
            result = function(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=60)


@contextlib.contextmanager
def running_double(
    workdir: Path, namespaces: tuple[str, ...] = ("default",)
) -> Iterator[ThreadedDouble]:
    threaded = ThreadedDouble(KubeDouble(workdir, namespaces))
    threaded.thread.start()
    try:
        threaded.call(threaded.double.start)
        yield threaded
    finally:
        threaded.call(threaded.double.stop)
        threaded.loop.call_soon_threadsafe(threaded.loop.stop)
        threaded.thread.join(timeout=10)


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig naming ``server`` (KubeSpawner loads one even when given a host)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "double", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "not-checked"}}],
                "contexts": [
                    {"name": "double", "context": {"cluster": "double", "user": "tester"}}
                ],
                "current-context": "double",
            }
        )
    )
    return path

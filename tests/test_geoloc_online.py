"""``weights: online`` for a timm backbone, against a local stand-in for the Hugging Face Hub.

timm downloads ``timm/<model>.<tag>`` through ``huggingface_hub.hf_hub_download``: a HEAD of
``{HF_ENDPOINT}/{repo}/resolve/main/model.safetensors`` for the metadata, then a GET of the file.
The fake hub answers that HEAD the way the real one answers for an LFS file: a 302 to a CDN
(here a second local server, on another port) with ``X-Repo-Commit``, ``X-Linked-Etag`` and
``X-Linked-Size``; the client does not follow a redirect to another origin during the HEAD but
downloads from its ``Location``.

huggingface_hub reads ``HF_ENDPOINT`` (and the offline flag, the cache folder, the hosts it trusts)
into module constants at import, and conftest sets ``HF_HUB_OFFLINE=1`` for the test process, so
the model is built in a child process with the environment set. There ``socket.getaddrinfo``
refuses every host but 127.0.0.1: a request meant for the internet fails and is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from aiohttp import web
from local_server import BackgroundServer
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
NAME = "test_resnet"  # a tiny timm model (0.5 M parameters) whose weights are on the hub
REPO = "timm/test_resnet.r160_in1k"
CLASSIFIER = ("fc.weight", "fc.bias")
COMMIT = hashlib.sha1(b"geolab fake hub").hexdigest()
RESOLVE = f"/{REPO}/resolve/main/"

CHILD = """
import json, socket, sys, traceback

blocked = []
_getaddrinfo = socket.getaddrinfo


def local_only(host, *args, **kwargs):
    if host != "127.0.0.1":
        blocked.append(str(host))
        raise OSError(f"test guard: no network outside 127.0.0.1 (asked for {host!r})")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = local_only
name, backbone_out, result_out = sys.argv[1:]
result = {}
try:
    import torch
    from safetensors.torch import save_file

    from geolab.geoloc.model import GeolocNet

    torch.manual_seed(0)
    net = GeolocNet(num_cells=3, backbone=name, weights="online").eval()
    with torch.no_grad():
        out = net(torch.rand(2, 4, 3, 32, 32))
    save_file({k: v.contiguous() for k, v in net.backbone.state_dict().items()}, backbone_out)
    result["shapes"] = {k: list(v.shape) for k, v in out.items()}
    result["finite"] = all(bool(torch.isfinite(v).all()) for v in out.values())
except Exception as e:
    result["error"] = {
        "type": type(e).__name__,
        "mro": [c.__name__ for c in type(e).__mro__],
        "message": str(e),
        "traceback": traceback.format_exc(),
    }
result["blocked"] = blocked
with open(result_out, "w") as f:
    json.dump(result, f)
"""


def served_weights() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A full checkpoint of ``NAME`` (classifier included, as published) unlike a fresh init.

    Returns the checkpoint and the fresh initialisation it was perturbed from.
    """
    import timm

    torch.manual_seed(0)
    fresh = timm.create_model(NAME, pretrained=False).state_dict()
    g = torch.Generator().manual_seed(1234)
    state = {}
    for key, value in fresh.items():
        if not value.is_floating_point():  # num_batches_tracked
            state[key] = torch.full_like(value, 7)
        elif key.endswith("running_var"):  # keep it positive
            state[key] = value * (1 + torch.rand(value.shape, generator=g))
        else:
            state[key] = value + 0.01 * torch.randn(value.shape, generator=g)
    return state, fresh


class FakeHub:
    """The hub's resolve endpoint and a CDN, each on its own port of 127.0.0.1.

    ``files`` maps a file name of ``REPO`` to its bytes; any other path is a 404 like the hub's
    (``X-Error-Code``). ``short_body`` makes the CDN send half of a file. Every request is
    recorded as ``(server, method, path, headers)``.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.short_body = False
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []
        hub, cdn = web.Application(), web.Application()
        hub.router.add_route("*", "/{tail:.*}", self._hub)
        cdn.router.add_route("*", "/{tail:.*}", self._cdn)
        self._hub_server = BackgroundServer(hub, access_log=False)
        self._cdn_server = BackgroundServer(cdn, access_log=False)
        self.endpoint = f"http://127.0.0.1:{self._hub_server.port}"
        self.cdn = f"http://127.0.0.1:{self._cdn_server.port}"

    def _record(self, server: str, request: web.Request) -> None:
        self.requests.append((server, request.method, request.path, dict(request.headers)))

    def paths(self, server: str | None = None) -> list[tuple[str, str, str]]:
        return [(s, m, p) for s, m, p, _ in self.requests if server in (None, s)]

    def _by_sha(self, sha: str) -> bytes | None:
        return next((d for d in self.files.values() if hashlib.sha256(d).hexdigest() == sha), None)

    async def _hub(self, request: web.Request) -> web.Response:
        self._record("hub", request)
        path = request.path
        if not path.startswith(RESOLVE):
            return web.Response(status=404, headers={"X-Error-Code": "RepoNotFound"})
        data = self.files.get(path[len(RESOLVE) :])
        if data is None:
            return web.Response(
                status=404,
                headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
            )
        sha = hashlib.sha256(data).hexdigest()
        headers = {
            "Location": f"{self.cdn}/blobs/{sha}",
            "X-Repo-Commit": COMMIT,
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "ETag": f'"{hashlib.sha1(sha.encode()).hexdigest()}"',  # the LFS pointer's, unused
        }
        return web.Response(status=302, headers=headers)

    async def _cdn(self, request: web.Request) -> web.Response:
        self._record("cdn", request)
        data = self._by_sha(request.path.rsplit("/", 1)[-1])
        if request.method != "GET" or not request.path.startswith("/blobs/") or data is None:
            return web.Response(status=404)
        if self.short_body:
            data = data[: len(data) // 2]
        return web.Response(body=data, content_type="application/octet-stream")

    def close(self) -> None:
        self._hub_server.close()
        self._cdn_server.close()


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


def build_online(hub: FakeHub, tmp_path: Path) -> tuple[dict[str, Any], Path, Path]:
    """Build ``GeolocNet(backbone=NAME, weights="online")`` in a child pointed at ``hub``.

    Returns the child's result, the backbone's saved state dict and the hub cache folder.
    """
    cache = tmp_path / "hf_home" / "hub"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING")) and k.lower() not in {"http_proxy", "https_proxy"}
    }
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_CACHE=str(cache),
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TORCH_HOME=str(tmp_path / "torch_home"),
        NO_PROXY="127.0.0.1",
        OMP_NUM_THREADS="1",
    )
    env.pop("ALL_PROXY", None)
    env.pop("all_proxy", None)
    backbone, result = tmp_path / "backbone.safetensors", tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, NAME, str(backbone), str(result)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(result.read_text()), backbone, cache


def test_online_weights_come_from_the_hub_endpoint(hub, tmp_path):
    state, fresh = served_weights()
    assert all(not torch.equal(state[k], fresh[k]) for k in state)  # not a fresh init
    weights = tmp_path / "model.safetensors"
    save_file(state, weights)
    data = weights.read_bytes()
    hub.files["model.safetensors"] = data
    sha = hashlib.sha256(data).hexdigest()

    result, backbone_file, cache = build_online(hub, tmp_path)

    assert "error" not in result, result["error"]["traceback"]
    assert result["blocked"] == []
    assert result["shapes"] == {"logits": [2, 3], "uv": [2, 2]}
    assert result["finite"]
    backbone = load_file(backbone_file)
    expected = {k: v for k, v in state.items() if k not in CLASSIFIER}
    assert backbone.keys() == expected.keys()  # timm loads non-strictly: check every key
    for key, value in expected.items():
        assert torch.equal(backbone[key], value), key
    # one HEAD on the hub, one GET on the CDN, nothing else
    assert hub.paths() == [
        ("hub", "HEAD", RESOLVE + "model.safetensors"),
        ("cdn", "GET", f"/blobs/{sha}"),
    ]
    assert "timm/" in hub.requests[0][3]["User-Agent"]
    # the file went through the hub cache under HF_HUB_CACHE: blob named by the sha256
    repo = cache / "models--timm--test_resnet.r160_in1k"
    assert (repo / "refs" / "main").read_text() == COMMIT
    snapshot = repo / "snapshots" / COMMIT / "model.safetensors"
    assert snapshot.resolve() == (repo / "blobs" / sha).resolve()
    assert snapshot.read_bytes() == data


def test_a_missing_file_on_the_hub_fails_and_caches_no_weights(hub, tmp_path):
    result, backbone_file, cache = build_online(hub, tmp_path)  # hub has no files: 404s

    error = result.get("error")
    assert error is not None, "building succeeded without weights"
    assert result["blocked"] == []
    # timm falls back from model.safetensors to pytorch_model.bin; the error is for the latter
    assert error["type"] == "RemoteEntryNotFoundError"
    assert {"EntryNotFoundError", "HfHubHTTPError", "OSError"} <= set(error["mro"])
    assert f"Entry Not Found for url: {hub.endpoint}{RESOLVE}pytorch_model.bin" in error["message"]
    assert hub.paths() == [
        ("hub", "HEAD", RESOLVE + "model.safetensors"),
        ("hub", "HEAD", RESOLVE + "pytorch_model.bin"),
    ]
    assert not backbone_file.exists()
    # the cache records the misses (.no_exist) and the commit, and holds no weights
    repo = cache / "models--timm--test_resnet.r160_in1k"
    assert (repo / "refs" / "main").read_text() == COMMIT
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    assert files == [
        f".no_exist/{COMMIT}/model.safetensors",
        f".no_exist/{COMMIT}/pytorch_model.bin",
        "refs/main",
    ]


def test_a_short_download_fails_and_leaves_no_file_in_the_cache(hub, tmp_path):
    state, _ = served_weights()
    weights = tmp_path / "model.safetensors"
    save_file(state, weights)
    data = weights.read_bytes()
    hub.files["model.safetensors"] = data
    hub.short_body = True  # the CDN sends half of the file (with a Content-Length to match)

    result, backbone_file, cache = build_online(hub, tmp_path)

    error = result.get("error")
    assert error is not None, "building succeeded from half a file"
    assert result["blocked"] == []
    assert error["type"] == "OSError"
    assert (
        f"Consistency check failed: file should be of size {len(data)} "
        f"but has size {len(data) // 2}" in error["message"]
    )
    sha = hashlib.sha256(data).hexdigest()
    assert hub.paths() == [
        ("hub", "HEAD", RESOLVE + "model.safetensors"),
        ("cdn", "GET", f"/blobs/{sha}"),
    ]
    assert not backbone_file.exists()
    # no blob, no snapshot link, no *.incomplete left behind: a rerun downloads again
    repo = cache / "models--timm--test_resnet.r160_in1k"
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if not p.is_dir())
    assert files == ["refs/main"]
    assert list((repo / "blobs").iterdir()) == []

"""A local fake of the parts of GitHub's REST API and download site that releases use.

GitHub cannot be reached from the test machines, so the release tests run real PyGithub and
requests against this HTTP server on 127.0.0.1. It follows GitHub's documented behaviour
(docs.github.com/en/rest/releases) where the release tooling depends on it:

- API under /api/v3 (the GitHub Enterprise layout PyGithub uses with a base_url), uploads under
  /api/uploads on the same host, as `upload_url` of each release says;
- POST /releases answers 422 `already_exists` for a tag that has a published release, while
  several drafts for one tag are allowed (that is how duplicates arise);
- GET /releases/tags/{tag} finds published releases only, never drafts;
- uploading an asset name that the release already has answers 422 `already_exists`;
- an asset's API URL serves its bytes for `Accept: application/octet-stream`, JSON otherwise;
- /<owner>/<repo>/releases/download/<tag>/<name> serves published assets only, by a 302
  redirect to a storage URL, as github.com does;
- every API call needs the token (401 "Bad credentials" otherwise);
- reads lag writes (`read_lag`): a release just created or published, or an asset just
  uploaded, answers 404 to the next `read_lag` reads of it by id or tag, as GitHub's replicas
  do for a few seconds;
- injected failures can carry headers (Retry-After, x-ratelimit-*) and a message, as GitHub's
  403/429 rate-limit refusals do (GitHub acts on none of the refused writes).

Every request is recorded, so tests can assert that a run made no write calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API = "/api/v3"
UPLOADS = "/api/uploads"
_DOCS = "https://docs.github.com/rest/releases"


@dataclass
class FakeAsset:
    """A release asset as GitHub stores it."""

    id: int
    name: str
    label: str
    content_type: str
    data: bytes
    state: str = "uploaded"


@dataclass
class FakeRelease:
    """A release, draft or published."""

    id: int
    tag_name: str
    name: str
    body: str
    draft: bool
    prerelease: bool
    target_commitish: str
    assets: list[FakeAsset] = field(default_factory=list)


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str


@dataclass
class Failure:
    """Make the next `times` requests matching method and path fail."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int = 1
    partial_upload: bool = False  # keep a broken "starter" asset, as a dropped upload does
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error (injected by the test)"


class FakeGitHub:
    """The fake's state and server; use as a context manager."""

    def __init__(self, repo: str = "xen-org/xen-test-vm", token: str = "ghp_fake_secret") -> None:
        self.repo = repo
        self.token = token
        self.tags: dict[str, str] = {}  # tag -> commit (lightweight)
        self.annotated: dict[str, str] = {}  # tag object sha -> commit
        self.annotated_refs: dict[str, str] = {}  # tag -> tag object sha
        self.releases: list[FakeRelease] = []
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self._next_id = 1000
        self.read_lag = 0  # reads of something just written that still answer 404
        self._lagging: dict[str, int] = {}
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle and addresses -------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def web_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.web_url + API

    # --- test helpers --------------------------------------------------------------------------

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def fail(self, method: str, path_regex: str, status: int = 500, **kwargs: Any) -> None:
        """Inject a failure for matching requests."""
        self.failures.append(Failure(method, re.compile(path_regex), status, **kwargs))

    def just_written(self, key: str) -> None:
        """Reads of key will lag: the next read_lag of them answer 404."""
        if self.read_lag:
            self._lagging[key] = self.read_lag

    def catch_up(self) -> None:
        """Every write so far is visible now (time passed)."""
        self._lagging.clear()

    def lagging(self, key: str) -> bool:
        """Whether this read of key still misses the write (and count it)."""
        left = self._lagging.get(key, 0)
        if left:
            self._lagging[key] = left - 1
        return left > 0

    def writes(self) -> list[Recorded]:
        """Recorded requests that could change state."""
        return [r for r in self.requests if r.method not in ("GET", "HEAD")]

    def releases_for(self, tag: str) -> list[FakeRelease]:
        return [r for r in self.releases if r.tag_name == tag]

    def publish_directly(self, tag: str, files: dict[str, bytes]) -> FakeRelease:
        """Create a published release with assets, as if made earlier by someone else."""
        release = FakeRelease(self.new_id(), tag, tag, "", False, False, "main")
        for name, data in files.items():
            release.assets.append(
                FakeAsset(self.new_id(), name, "", "application/octet-stream", data)
            )
        self.releases.append(release)
        return release

    @contextmanager
    def recording(self) -> Iterator[list[Recorded]]:
        """Yield the list of requests made inside the block."""
        start = len(self.requests)
        calls: list[Recorded] = []
        yield calls
        calls.extend(self.requests[start:])

    # --- JSON views ----------------------------------------------------------------------------

    def asset_json(self, release: FakeRelease, asset: FakeAsset) -> dict[str, Any]:
        owner_repo = self.repo
        tag = release.tag_name if not release.draft else f"untagged-{release.id:x}"
        return {
            "url": f"{self.api_url}/repos/{owner_repo}/releases/assets/{asset.id}",
            "browser_download_url": (
                f"{self.web_url}/{owner_repo}/releases/download/{tag}/{asset.name}"
            ),
            "id": asset.id,
            "node_id": f"RA_{asset.id}",
            "name": asset.name,
            "label": asset.label,
            "state": asset.state,
            "content_type": asset.content_type,
            "size": len(asset.data),
            "digest": "sha256:" + hashlib.sha256(asset.data).hexdigest()
            if asset.state == "uploaded"
            else None,
            "download_count": 0,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "uploader": None,
        }

    def release_json(self, release: FakeRelease) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{self.repo}/releases/{release.id}"
        tag = release.tag_name if not release.draft else f"untagged-{release.id:x}"
        return {
            "url": base,
            "assets_url": base + "/assets",
            "upload_url": (
                f"{self.web_url}{UPLOADS}/repos/{self.repo}/releases/{release.id}"
                "/assets{?name,label}"
            ),
            "html_url": f"{self.web_url}/{self.repo}/releases/tag/{tag}",
            "id": release.id,
            "node_id": f"RE_{release.id}",
            "tag_name": release.tag_name,
            "target_commitish": release.target_commitish,
            "name": release.name,
            "body": release.body,
            "draft": release.draft,
            "prerelease": release.prerelease,
            "created_at": "2026-01-01T00:00:00Z",
            "published_at": None if release.draft else "2026-01-01T00:00:01Z",
            "assets": [self.asset_json(release, a) for a in release.assets],
        }

    def find_asset(self, asset_id: int) -> tuple[FakeRelease, FakeAsset] | None:
        for release in self.releases:
            for asset in release.assets:
                if asset.id == asset_id:
                    return release, asset
        return None


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> _Reply:
    body: dict[str, Any] = {"message": message, "documentation_url": _DOCS}
    if errors:
        body["errors"] = errors
    return _Reply(status, body)


def _already_exists(resource: str, field_name: str) -> _Reply:
    return _error(
        422,
        "Validation Failed",
        [{"resource": resource, "code": "already_exists", "field": field_name}],
    )


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes; without this, Nagle + delayed ACK add ~40 ms each.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with fake._lock:
                fake.requests.append(Recorded(method, self.path))
                try:
                    self._inject_failure(method, body)
                    reply = self._route(method, body)
                except _Reply as raised:
                    reply = raised
            self._send(reply)

        def _inject_failure(self, method: str, body: bytes) -> None:
            path = urlsplit(self.path).path
            for failure in fake.failures:
                if failure.times > 0 and failure.method == method and failure.path.search(path):
                    failure.times -= 1
                    if failure.partial_upload:
                        self._store_upload(body[: len(body) // 2], state="starter")
                    reply = _error(failure.status, failure.message)
                    reply.headers.update(failure.headers)
                    raise reply

        def _send(self, reply: _Reply) -> None:
            if isinstance(reply.body, bytes):
                payload = reply.body
                content_type = reply.headers.pop("Content-Type", "application/octet-stream")
            elif reply.body is None:
                payload, content_type = b"", "application/json"
            else:
                payload = json.dumps(reply.body).encode()
                content_type = "application/json; charset=utf-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def _authorised(self) -> None:
            header = self.headers.get("Authorization", "")
            if header not in (f"token {fake.token}", f"Bearer {fake.token}"):
                raise _error(401, "Bad credentials")

        def _route(self, method: str, body: bytes) -> _Reply:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            repo = fake.repo
            if method == "GET" and path.startswith(f"/{repo}/releases/download/"):
                return self._public_download(path.removeprefix(f"/{repo}/releases/download/"))
            if method == "GET" and path.startswith("/_storage/"):
                return self._storage(int(path.removeprefix("/_storage/")))
            self._authorised()
            upload = re.fullmatch(rf"{UPLOADS}/repos/{repo}/releases/(\d+)/assets", path)
            if upload and method == "POST":
                return self._upload(int(upload.group(1)), query, body)
            prefix = f"{API}/repos/{repo}"
            if not path.startswith(prefix):
                raise _error(404, "Not Found")
            return self._api(method, path.removeprefix(prefix), query, body)

        def _api(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
            if path == "" and method == "GET":
                owner, name = fake.repo.split("/")
                return _Reply(
                    200,
                    {
                        "id": 1,
                        "name": name,
                        "full_name": fake.repo,
                        "owner": {"login": owner},
                        "url": f"{fake.api_url}/repos/{fake.repo}",
                        "private": False,
                    },
                )
            if match := re.fullmatch(r"/git/ref/tags/(.+)", path):
                return self._tag_ref(match.group(1))
            if match := re.fullmatch(r"/git/tags/([0-9a-f]+)", path):
                commit = fake.annotated.get(match.group(1))
                if commit is None:
                    raise _error(404, "Not Found")
                return _Reply(
                    200,
                    {"sha": match.group(1), "object": {"type": "commit", "sha": commit}},
                )
            if path == "/releases":
                if method == "POST":
                    return self._create_release(json.loads(body or b"{}"))
                return self._list_releases(query)
            if match := re.fullmatch(r"/releases/tags/(.+)", path):
                if fake.lagging(f"tag:{match.group(1)}"):
                    raise _error(404, "Not Found")
                for release in fake.releases:
                    if release.tag_name == match.group(1) and not release.draft:
                        return _Reply(200, fake.release_json(release))
                raise _error(404, "Not Found")
            if match := re.fullmatch(r"/releases/assets/(\d+)", path):
                return self._asset(method, int(match.group(1)))
            if match := re.fullmatch(r"/releases/(\d+)(/assets)?", path):
                if method == "GET" and fake.lagging(f"release:{match.group(1)}"):
                    raise _error(404, "Not Found")
                release = self._release(int(match.group(1)))
                if match.group(2):
                    return _Reply(200, [fake.asset_json(release, a) for a in release.assets])
                return self._release_call(method, release, body)
            raise _error(404, "Not Found")

        def _tag_ref(self, tag: str) -> _Reply:
            if tag in fake.annotated_refs:
                target = {"type": "tag", "sha": fake.annotated_refs[tag]}
            elif tag in fake.tags:
                target = {"type": "commit", "sha": fake.tags[tag]}
            else:
                raise _error(404, "Not Found")
            return _Reply(200, {"ref": f"refs/tags/{tag}", "object": target})

        def _list_releases(self, query: dict[str, list[str]]) -> _Reply:
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            newest_first = sorted(fake.releases, key=lambda r: r.id, reverse=True)
            chunk = newest_first[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(newest_first):
                url = f"{fake.api_url}/repos/{fake.repo}/releases?per_page={per_page}"
                headers["Link"] = f'<{url}&page={page + 1}>; rel="next"'
            return _Reply(200, [fake.release_json(r) for r in chunk], headers)

        def _create_release(self, data: dict[str, Any]) -> _Reply:
            tag = data.get("tag_name")
            if not tag:
                raise _error(422, "Validation Failed", [{"code": "missing_field"}])
            if any(r.tag_name == tag and not r.draft for r in fake.releases):
                raise _already_exists("Release", "tag_name")
            release = FakeRelease(
                id=fake.new_id(),
                tag_name=tag,
                name=data.get("name") or tag,
                body=data.get("body") or "",
                draft=bool(data.get("draft")),
                prerelease=bool(data.get("prerelease")),
                target_commitish=data.get("target_commitish") or "main",
            )
            fake.releases.append(release)
            fake.just_written(f"release:{release.id}")
            return _Reply(201, fake.release_json(release))

        def _release(self, release_id: int) -> FakeRelease:
            for release in fake.releases:
                if release.id == release_id:
                    return release
            raise _error(404, "Not Found")

        def _release_call(self, method: str, release: FakeRelease, body: bytes) -> _Reply:
            if method == "GET":
                return _Reply(200, fake.release_json(release))
            if method == "DELETE":
                fake.releases.remove(release)
                return _Reply(204)
            if method == "PATCH":
                data = json.loads(body or b"{}")
                publishing = data.get("draft") is False and release.draft
                tag_taken = any(
                    r.tag_name == release.tag_name and not r.draft for r in fake.releases
                )
                if publishing and tag_taken:
                    raise _already_exists("Release", "tag_name")
                for key in ("name", "body", "draft", "prerelease", "tag_name"):
                    if key in data:
                        setattr(release, key, data[key])
                if publishing:
                    fake.just_written(f"tag:{release.tag_name}")
                return _Reply(200, fake.release_json(release))
            raise _error(405, "Method Not Allowed")

        def _asset(self, method: str, asset_id: int) -> _Reply:
            found = fake.find_asset(asset_id)
            if found is None:
                raise _error(404, "Not Found")
            release, asset = found
            if method == "DELETE":
                release.assets.remove(asset)
                return _Reply(204)
            if method == "GET":
                if fake.lagging(f"asset:{asset_id}"):
                    raise _error(404, "Not Found")
                if self.headers.get("Accept") == "application/octet-stream":
                    return _Reply(200, asset.data)
                return _Reply(200, fake.asset_json(release, asset))
            raise _error(405, "Method Not Allowed")

        def _upload(self, release_id: int, query: dict[str, list[str]], body: bytes) -> _Reply:
            self._release(release_id)
            if not self.headers.get("Content-Type"):
                raise _error(422, "Content-Type header is required")
            return _Reply(201, self._store_upload(body))

        def _store_upload(self, body: bytes, state: str = "uploaded") -> dict[str, Any]:
            parts = urlsplit(self.path)
            release_id = int(parts.path.rsplit("/", 2)[-2])
            query = parse_qs(parts.query)
            name = query.get("name", [""])[0]
            if not name:
                raise _error(422, "Validation Failed", [{"code": "missing_field"}])
            release = self._release(release_id)
            if any(a.name == name for a in release.assets):
                raise _already_exists("ReleaseAsset", "name")
            asset = FakeAsset(
                id=fake.new_id(),
                name=name,
                label=query.get("label", [""])[0],
                content_type=self.headers.get("Content-Type", ""),
                data=body,
                state=state,
            )
            release.assets.append(asset)
            fake.just_written(f"asset:{asset.id}")
            return fake.asset_json(release, asset)

        def _public_download(self, rest: str) -> _Reply:
            tag, _, name = rest.partition("/")
            for release in fake.releases:
                if release.tag_name == tag and not release.draft:
                    for asset in release.assets:
                        if asset.name == name and asset.state == "uploaded":
                            location = f"{fake.web_url}/_storage/{asset.id}"
                            return _Reply(302, None, {"Location": location})
            raise _Reply(404, b"Not Found", {"Content-Type": "text/plain"})

        def _storage(self, asset_id: int) -> _Reply:
            found = fake.find_asset(asset_id)
            if found is None:
                raise _Reply(404, b"Not Found", {"Content-Type": "text/plain"})
            return _Reply(200, found[1].data)

    return Handler

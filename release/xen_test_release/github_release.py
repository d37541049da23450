"""Publishing a GitHub release idempotently: draft first, verified assets, publish last.

Every step first looks at what GitHub already has, so running the command again after a
failure anywhere finishes the job without duplicate releases or assets; an asset of a
published release is never replaced by different bytes.

GitHub's reads lag its writes: a release, asset or tag just written can be missing (404) for a
few seconds, so reads of something just written are retried with backoff, boundedly. Writes that
a rate limit refused (403/429; GitHub refuses them before acting) are retried after the
Retry-After GitHub names. Every error names the step and the URL (never the token).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TextIO, TypeVar

import requests
from github import Auth, Github, GithubException, GithubRetry, UnknownObjectException
from github.GitRelease import GitRelease
from github.GitReleaseAsset import GitReleaseAsset
from github.Repository import Repository
from urllib3.util.retry import Retry

from xen_test_release.errors import ReleaseError, github_failure
from xen_test_release.progress import ProgressBar, ProgressReader

DEFAULT_API_URL = "https://api.github.com"
_DOWNLOAD_CHUNK = 64 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Patience:
    """How long to wait for GitHub to catch up (tests shorten the delays)."""

    read_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)  # ~15 s for a read-after-write
    write_retries: int = 3  # rate-limited writes
    max_wait: float = 300.0  # longer Retry-After than this: give up, say when to run again
    sleep: Callable[[float], None] = time.sleep


class NotVisibleYet(Exception):
    """GitHub answered 404 (or an older state) for something just written."""


def _is_not_found(error: BaseException) -> bool:
    if isinstance(error, UnknownObjectException | NotVisibleYet):
        return True
    if isinstance(error, requests.HTTPError):
        return error.response is not None and error.response.status_code == 404
    return isinstance(error, GithubException) and error.status == 404


def eventually(step: str, url: str, read: Callable[[], T], patience: Patience) -> T:
    """A read of something just written: retried while GitHub still answers 404."""
    waited = 0.0
    for delay in (*patience.read_delays, None):
        try:
            return read()
        except (GithubException, requests.HTTPError, NotVisibleYet) as error:
            if not _is_not_found(error):
                if isinstance(error, GithubException):
                    raise github_failure(step, url, error) from None
                raise ReleaseError(f"{step} failed ({url}): {error}") from None
            if delay is None:
                raise ReleaseError(
                    f"{step} failed ({url}): GitHub still answers 404 {waited:g} s after the "
                    "write (its read-after-write lag); run again to continue"
                ) from None
            patience.sleep(delay)
            waited += delay
    raise AssertionError("unreachable")


def rate_limit_wait(error: GithubException, now: float | None = None) -> float | None:
    """Seconds to wait before retrying a write a rate limit refused; None if it was not one.

    GitHub answers 429, or 403 with Retry-After or x-ratelimit-remaining 0, and acts on none of
    them: the write can be sent again. Without Retry-After, x-ratelimit-reset says when.
    """
    headers = {k.lower(): v for k, v in (error.headers or {}).items()}
    message = str((error.data or {}).get("message", "") if isinstance(error.data, dict) else "")
    limited = error.status == 429 or (
        error.status == 403
        and (
            "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in message.lower()
        )
    )
    if not limited:
        return None
    if headers.get("retry-after", "").strip().isdigit():
        return float(headers["retry-after"])
    reset = headers.get("x-ratelimit-reset", "")
    if reset.isdigit():
        return max(0.0, float(reset) - (time.time() if now is None else now)) + 1
    return 60.0  # GitHub's advice for secondary limits without a header: wait a minute


def write(step: str, url: str, call: Callable[[], T], patience: Patience, say: Say) -> T:
    """A write, retried after Retry-After when a rate limit refused it; else its error."""
    for attempt in range(patience.write_retries + 1):
        try:
            return call()
        except GithubException as error:
            wait = rate_limit_wait(error)
            if wait is None or attempt == patience.write_retries:
                raise
            if wait > patience.max_wait:
                raise ReleaseError(
                    f"{step} failed ({url}): rate limited by GitHub for {wait:.0f} s more; "
                    "run again after that"
                ) from None
            say(f"{step}: rate limited by GitHub, retrying in {wait:g} s")
            patience.sleep(wait)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class AssetSpec:
    """One file to publish."""

    name: str
    data: bytes
    content_type: str

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ReleaseRequest:
    """What to publish, and where."""

    repo: str
    tag: str
    commit: str
    title: str
    body: str
    prerelease: bool
    assets: Sequence[AssetSpec]
    stop_at_draft: bool = False
    dry_run: bool = False


class Action(Enum):
    """What publishing does with one asset."""

    KEEP = "keep"
    UPLOAD = "upload"
    REPAIR = "repair"  # the name is held by a broken upload without bytes
    REPLACE_IN_DRAFT = "replace"


@dataclass(frozen=True)
class PlannedAsset:
    """An asset and what to do about it, given the existing one (if any)."""

    spec: AssetSpec
    action: Action
    existing: GitReleaseAsset | None


Say = Callable[[str], None]


def _api(url: str) -> str:
    """An API URL as GitHub templates it, without the {?name,label} part."""
    return url.split("{", 1)[0]


def connect(token: str | None, api_url: str, *, throttle: bool = True) -> Github:
    """A PyGithub client for api_url.

    POST is not retried automatically: creating a release or uploading an asset is not
    idempotent, and a blind retry could duplicate it. Re-running the command is the retry.
    throttle=False drops PyGithub's pauses between requests (for the local fake in tests).
    """
    retry = GithubRetry(allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"GET"})
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=api_url.rstrip("/"),
        retry=retry,
        timeout=60,
        seconds_between_requests=0.25 if throttle else None,
        seconds_between_writes=1.0 if throttle else None,
    )


def _is_already_exists(error: GithubException) -> bool:
    data = error.data if isinstance(error.data, dict) else {}
    errors = data.get("errors", [])
    return error.status == 422 and any(
        isinstance(item, dict) and item.get("code") == "already_exists" for item in errors
    )


def open_repo(gh: Github, name: str) -> Repository:
    """The repository, or a clear error if it is missing or the token cannot see it."""
    try:
        return gh.get_repo(name)
    except UnknownObjectException:
        raise ReleaseError(
            f"repository {name} not found (or the token has no access to it)"
        ) from None
    except GithubException as error:
        raise github_failure(
            "open repository", f"{gh.requester.base_url}/repos/{name}", error
        ) from None


def remote_tag_commit(repo: Repository, tag: str) -> str | None:
    """The commit the tag names on GitHub (following annotated tags), or None if absent."""
    try:
        target = repo.get_git_ref(f"tags/{tag}").object
    except UnknownObjectException:
        return None
    sha, kind = target.sha, target.type
    for _ in range(8):
        if kind != "tag":
            break
        tag_object = repo.get_git_tag(sha).object
        sha, kind = tag_object.sha, tag_object.type
    if kind != "commit":
        raise ReleaseError(f"tag {tag} on GitHub names a {kind}, not a commit")
    return sha


def find_release(repo: Repository, tag: str) -> GitRelease | None:
    """The published release for tag, else the single draft for it, else None.

    GET /releases/tags/{tag} does not return drafts, so drafts are found by listing.
    """
    try:
        return repo.get_release(tag)
    except UnknownObjectException:
        pass
    drafts = [release for release in repo.get_releases() if release.tag_name == tag]
    if len(drafts) > 1:
        ids = ", ".join(str(release.id) for release in drafts)
        raise ReleaseError(
            f"{len(drafts)} releases for tag {tag} exist (ids {ids}); "
            "delete the extra drafts on GitHub, then run again"
        )
    return drafts[0] if drafts else None


def download_asset_bytes(asset: GitReleaseAsset) -> bytes:
    """Fetch an asset through the API (Accept: application/octet-stream); works for drafts."""
    _status, _headers, chunks = asset.download_asset(chunk_size=_DOWNLOAD_CHUNK)
    return b"".join(chunks)


def _published_digest(asset: GitReleaseAsset) -> str:
    """The asset's SHA-256: GitHub's digest field when present, else by downloading it."""
    digest = asset.digest
    if digest and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:")
    return hashlib.sha256(download_asset_bytes(asset)).hexdigest()


def plan_assets(release: GitRelease | None, specs: Sequence[AssetSpec]) -> list[PlannedAsset]:
    """Decide per asset; raise before any change if a published asset would be replaced."""
    existing = {asset.name: asset for asset in release.get_assets()} if release else {}
    plan: list[PlannedAsset] = []
    conflicts: list[str] = []
    for spec in specs:
        asset = existing.get(spec.name)
        if asset is None:
            plan.append(PlannedAsset(spec, Action.UPLOAD, None))
        elif asset.state != "uploaded":
            # A broken upload (state "starter"/"new") holds the name without any bytes.
            plan.append(PlannedAsset(spec, Action.REPAIR, asset))
        elif _published_digest(asset) == spec.sha256:
            plan.append(PlannedAsset(spec, Action.KEEP, asset))
        elif release is not None and release.draft:
            plan.append(PlannedAsset(spec, Action.REPLACE_IN_DRAFT, asset))
        else:
            conflicts.append(f"{spec.name} (GitHub has sha256 {_published_digest(asset)[:16]}…)")
    if conflicts:
        ours = ", ".join(f"{spec.name} sha256 {spec.sha256[:16]}…" for spec in specs)
        raise ReleaseError(
            f"release {release.tag_name if release else '?'} is published and its assets differ "
            f"from this build: {', '.join(conflicts)}; this build has {ours}; refusing to "
            "replace published bytes — publish a new version instead"
        )
    return plan


class Publisher:
    """Carries one release request through GitHub, reporting each step."""

    def __init__(
        self,
        gh: Github,
        request: ReleaseRequest,
        say: Say,
        progress: TextIO | None,
        patience: Patience | None = None,
    ) -> None:
        self.gh = gh
        self.request = request
        self.say = say
        self.progress = progress
        self.patience = patience or Patience()

    def run(self) -> str:
        """Publish (or, with dry_run, describe); return the release's web URL or a summary."""
        request = self.request
        repo = open_repo(self.gh, request.repo)
        self._check_remote_tag(repo)
        release = find_release(repo, request.tag)
        plan = plan_assets(release, request.assets)
        if request.dry_run:
            return self._describe(release, plan)
        if release is None:
            release = self._create_draft(repo)
        elif release.draft:
            self.say(f"continuing draft release {request.tag} (id {release.id})")
        for item in plan:
            self._apply(release, item)
        if not release.draft:
            changed = any(item.action is not Action.KEEP for item in plan)
            state = "completed" if changed else "already complete; nothing changed"
            self.say(f"release {request.tag} is published ({state}): {release.html_url}")
            return release.html_url
        if request.stop_at_draft:
            self.say(
                f"draft release {request.tag} is ready (not published: --draft): {release.html_url}"
            )
            return release.html_url
        return self._publish(repo, release)

    def _check_remote_tag(self, repo: Repository) -> None:
        tag, commit = self.request.tag, self.request.commit
        remote = remote_tag_commit(repo, tag)
        if remote is None:
            raise ReleaseError(
                f"tag {tag} is not on GitHub ({self.request.repo}); push it first: "
                f"git push origin {tag}"
            )
        if remote != commit:
            raise ReleaseError(
                f"tag {tag} on GitHub names commit {remote[:12]}, but the local tag and "
                f"build are {commit[:12]}; the tags disagree, fix that before releasing"
            )

    def _describe(self, release: GitRelease | None, plan: list[PlannedAsset]) -> str:
        tag = self.request.tag
        if release is None:
            self.say(f"would create draft release {tag} at {self.request.commit[:12]}")
        else:
            state = "draft" if release.draft else "published"
            self.say(f"found {state} release {tag} (id {release.id})")
        for item in plan:
            verb = {
                Action.KEEP: "keep (identical)",
                Action.UPLOAD: "upload",
                Action.REPAIR: "replace broken upload of",
                Action.REPLACE_IN_DRAFT: "replace in draft",
            }[item.action]
            self.say(f"would {verb}: {item.spec.name} sha256 {item.spec.sha256}")
        if release is None or release.draft:
            final = "leave the draft unpublished" if self.request.stop_at_draft else "publish"
            self.say(f"would {final}")
        self.say("dry run: nothing was changed on GitHub")
        return "dry run"

    def _create_draft(self, repo: Repository) -> GitRelease:
        request = self.request
        url = f"{repo.url}/releases"
        try:
            release = write(
                "create draft",
                url,
                lambda: repo.create_git_release(
                    tag=request.tag,
                    name=request.title,
                    message=request.body,
                    draft=True,
                    prerelease=request.prerelease,
                    target_commitish=request.commit,
                ),
                self.patience,
                self.say,
            )
        except GithubException as error:
            if _is_already_exists(error):
                # GitHub refuses a second release for a tag that has a published one.
                raise ReleaseError(
                    f"a release for tag {request.tag} appeared while this one was being "
                    "created; run again to continue with it"
                ) from None
            raise github_failure("create draft", url, error) from None
        self.say(f"created draft release {request.tag} (id {release.id})")
        return release

    def _apply(self, release: GitRelease, item: PlannedAsset) -> None:
        spec = item.spec
        if item.action is Action.KEEP:
            self.say(f"{spec.name}: already uploaded, identical (sha256 {spec.sha256[:16]}…)")
            return
        if item.existing is not None:
            what = "broken upload" if item.action is Action.REPAIR else "different draft copy"
            self.say(f"{spec.name}: removing the {what} before uploading")
            existing = item.existing
            try:
                write("delete", existing.url, existing.delete_asset, self.patience, self.say)
            except GithubException as error:
                raise github_failure("delete", existing.url, error) from None
        asset = self._upload(release, spec)
        self._check_uploaded(asset, spec)
        self.say(f"{spec.name}: uploaded and verified (sha256 {spec.sha256[:16]}…)")

    def _upload(self, release: GitRelease, spec: AssetSpec) -> GitReleaseAsset:
        bar = ProgressBar(f"uploading {spec.name}", len(spec.data), self.progress)
        url = f"{_api(release.upload_url)}?name={spec.name}"
        try:
            asset = write(
                "upload",
                url,
                lambda: release.upload_asset_from_memory(
                    ProgressReader(spec.data, bar),  # type: ignore[arg-type]
                    len(spec.data),
                    name=spec.name,
                    content_type=spec.content_type,
                ),
                self.patience,
                self.say,
            )
        except GithubException as error:
            if not _is_already_exists(error):
                raise github_failure("upload", url, error) from None
            # A concurrent or half-acknowledged upload won the name: compare, don't replace.
            [again] = eventually(
                "read back",
                f"{release.url}/assets",
                lambda: plan_assets(release, [spec]),
                self.patience,
            )
            if again.action is not Action.KEEP or again.existing is None:
                raise ReleaseError(
                    f"{spec.name} appeared on the release while uploading and differs from "
                    "this build; run again to replace the draft's copy"
                ) from None
            return again.existing
        finally:
            bar.finish()
        return asset

    def _check_uploaded(self, asset: GitReleaseAsset, spec: AssetSpec) -> None:
        """Download the asset back and compare digests; a bad copy is removed."""
        reported = asset.digest
        data = eventually(
            "read back", asset.url, lambda: download_asset_bytes(asset), self.patience
        )
        fetched = hashlib.sha256(data).hexdigest()
        problems = []
        if fetched != spec.sha256:
            problems.append(f"downloaded sha256 {fetched[:16]}…")
        if reported and reported != f"sha256:{spec.sha256}":
            problems.append(f"GitHub reports {reported[:23]}…")
        if asset.size != len(spec.data):
            problems.append(f"size {asset.size} instead of {len(spec.data)}")
        if problems:
            write("delete", asset.url, asset.delete_asset, self.patience, self.say)
            raise ReleaseError(
                f"{spec.name} was corrupted in upload ({', '.join(problems)}; expected "
                f"sha256 {spec.sha256[:16]}…); the bad copy was removed, run again"
            )

    def _publish(self, repo: Repository, release: GitRelease) -> str:
        request = self.request
        try:
            published = write(
                "publish",
                release.url,
                lambda: release.update_release(
                    name=request.title,
                    message=request.body,
                    draft=False,
                    prerelease=request.prerelease,
                ),
                self.patience,
                self.say,
            )
        except GithubException as error:
            raise github_failure("publish", release.url, error) from None
        by_tag = f"{repo.url}/releases/tags/{request.tag}"

        def confirmed() -> GitRelease:
            found = repo.get_release(request.tag)
            if found.id != published.id and found.draft:
                raise NotVisibleYet(found.id)  # an older state of the listing
            return found

        shown = eventually("confirm publish", by_tag, confirmed, self.patience)
        if shown.id != published.id:
            raise ReleaseError(
                f"confirm publish failed ({by_tag}): GitHub shows release id {shown.id} for tag "
                f"{request.tag}, not the one just published ({published.id}); inspect the "
                "releases page"
            )
        self.say(f"published release {request.tag}: {published.html_url}")
        return published.html_url

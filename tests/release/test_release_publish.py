"""Publishing releases with real PyGithub against a local fake of GitHub's REST API.

GitHub is faked (tests/release/fake_github.py) because it cannot be reached from here; the fake
follows GitHub's documented responses for releases and assets.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import socket
from pathlib import Path

import pytest
from xen_test_release.commands import ReleaseOptions, release_command
from xen_test_release.errors import run_cli
from xen_test_vm.errors import ExitCode

from tests.release.conftest import VERSION, SourceRepo, World, git
from tests.release.fake_github import FakeGitHub, FakeRelease

NAMES = {"test-vm.xen.gz", "SHA256SUMS", "build-manifest.json"}


def release(world: World, fake: FakeGitHub, **options: object) -> tuple[int, str, str]:
    """Run the release command the way the invoke task does; return (exit, stdout, stderr)."""
    opts = ReleaseOptions(version=VERSION, api_url=fake.api_url)
    opts = dataclasses.replace(opts, **options)  # type: ignore[arg-type]
    err = io.StringIO()
    start = world.out.tell()
    code = run_cli(lambda: release_command(opts, world.environment), stderr=err)
    return code, world.out.getvalue()[start:], err.getvalue()


def only_release(fake: FakeGitHub) -> FakeRelease:
    releases = fake.releases_for(VERSION)
    assert len(releases) == 1, [(r.id, r.draft) for r in releases]
    return releases[0]


def assert_complete(fake: FakeGitHub, repo: SourceRepo) -> FakeRelease:
    """One published release for the tag with exactly the three correct assets."""
    published = only_release(fake)
    assert not published.draft
    assert sorted(a.name for a in published.assets) == sorted(NAMES)
    assets = {a.name: a for a in published.assets}
    assert all(a.state == "uploaded" for a in published.assets)
    image = assets["test-vm.xen.gz"]
    assert image.data == repo.artifact.read_bytes()
    assert image.content_type == "application/gzip"
    assert gzip.decompress(image.data) == (repo.root / "kernel" / "kernel.c").read_bytes()
    sums = assets["SHA256SUMS"].data.decode()
    for name in ("test-vm.xen.gz", "build-manifest.json"):
        assert f"{hashlib.sha256(assets[name].data).hexdigest()}  {name}\n" in sums
    manifest = json.loads(assets["build-manifest.json"].data)
    assert manifest["version"] == VERSION
    assert manifest["source_revision"] == repo.head
    assert manifest["image"]["sha256"] == hashlib.sha256(image.data).hexdigest()
    assert manifest["toolchain"]["installed_debian_packages"]["libxen-dev"]
    assert published.target_commitish == repo.head
    # The notes show where to download from: the fake's web host, as for GitHub Enterprise.
    download = f"{fake.web_url}/{fake.repo}/releases/download/{VERSION}/test-vm.xen.gz"
    assert f"curl -fLO {download}" in published.body
    return published


def one_line_error(code: int, err: str) -> str:
    assert code != 0
    assert err.startswith("release: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture(autouse=True)
def tag_pushed(fake_github: FakeGitHub, source_repo: SourceRepo) -> None:
    fake_github.tags[VERSION] = source_repo.head


def test_first_release_publishes_three_verified_assets(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    code, out, err = release(world, fake_github)
    assert (code, err) == (0, "")
    assert_complete(fake_github, source_repo)
    assert f"published release {VERSION}" in out
    # Each upload was downloaded back through the API before publishing.
    asset_gets = [r for r in fake_github.requests if "/releases/assets/" in r.path]
    assert len(asset_gets) >= 3
    publish = [i for i, r in enumerate(fake_github.requests) if r.method == "PATCH"]
    uploads = [i for i, r in enumerate(fake_github.requests) if "/api/uploads/" in r.path]
    assert len(publish) == 1 and max(uploads) < publish[0], "publish must come last"
    assert fake_github.token not in out + err + world.progress.getvalue()


def test_published_release_is_found_by_tag_only_after_publishing(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    code, out, _ = release(world, fake_github, draft=True)
    assert code == 0 and "not published: --draft" in out
    draft = only_release(fake_github)
    assert draft.draft and len(draft.assets) == 3
    code, out, _ = release(world, fake_github)
    assert code == 0
    assert assert_complete(fake_github, source_repo).id == draft.id
    assert f"continuing draft release {VERSION}" in out


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        pytest.param("POST", r"/releases$", {}, id="creating-the-draft"),
        pytest.param("POST", r"/api/uploads/", {"partial_upload": True}, id="image-upload-cut"),
        pytest.param("POST", r"/api/uploads/", {"times": 1, "status": 502}, id="upload-502"),
        pytest.param("PATCH", r"/releases/\d+$", {"status": 502}, id="between-upload-and-publish"),
    ],
)
def test_rerun_after_a_failure_completes_without_duplicates(
    world: World,
    fake_github: FakeGitHub,
    source_repo: SourceRepo,
    method: str,
    path: str,
    kwargs: dict[str, object],
) -> None:
    fake_github.fail(method, path, **kwargs)  # type: ignore[arg-type]
    code, _, err = release(world, fake_github)
    one_line_error(code, err)
    assert "GitHub API returned" in err
    assert all(r.draft for r in fake_github.releases_for(VERSION)), "published too early"
    code, _, err = release(world, fake_github)
    assert (code, err) == (0, "")
    assert_complete(fake_github, source_repo)


def test_rerun_repairs_a_broken_upload_left_on_the_draft(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    fake_github.fail("POST", r"/api/uploads/", partial_upload=True)
    code, _, err = release(world, fake_github)
    one_line_error(code, err)
    [broken] = only_release(fake_github).assets
    assert broken.state == "starter"
    code, out, _ = release(world, fake_github)
    assert code == 0 and "removing the broken upload" in out
    assert_complete(fake_github, source_repo)


def test_rerun_on_a_complete_release_changes_nothing(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    assert release(world, fake_github)[0] == 0
    before = assert_complete(fake_github, source_repo)
    snapshot = [(a.id, a.data) for a in before.assets]
    with fake_github.recording() as calls:
        code, out, err = release(world, fake_github)
    assert (code, err) == (0, "")
    assert "already complete; nothing changed" in out
    assert calls and all(call.method == "GET" for call in calls), calls
    assert [(a.id, a.data) for a in only_release(fake_github).assets] == snapshot


def test_published_asset_with_other_bytes_is_never_replaced(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    other = gzip.compress(b"an older build of the same tag", mtime=0)
    fake_github.publish_directly(VERSION, {"test-vm.xen.gz": other})
    with fake_github.recording() as calls:
        code, _, err = release(world, fake_github)
    one_line_error(code, err)
    assert "refusing to replace published bytes" in err
    assert [c for c in calls if c.method != "GET"] == []
    assert only_release(fake_github).assets[0].data == other


def test_draft_asset_with_other_bytes_is_replaced(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    assert release(world, fake_github, draft=True)[0] == 0
    image = next(a for a in only_release(fake_github).assets if a.name == "test-vm.xen.gz")
    image.data = b"bytes from an abandoned attempt"
    code, out, _ = release(world, fake_github)
    assert code == 0 and "removing the different draft copy" in out
    assert_complete(fake_github, source_repo)


def test_dry_run_reports_the_plan_and_writes_nothing(world: World, fake_github: FakeGitHub) -> None:
    code, out, err = release(world, fake_github, dry_run=True)
    assert (code, err) == (0, "")
    assert f"would create draft release {VERSION}" in out and "would upload: SHA256SUMS" in out
    assert fake_github.writes() == [] and fake_github.releases == []


def test_upload_progress_is_drawn_when_a_terminal_is_attached(
    world: World, fake_github: FakeGitHub
) -> None:
    assert release(world, fake_github)[0] == 0
    bars = world.progress.getvalue()
    assert "uploading test-vm.xen.gz [" in bars and "100%" in bars


def test_annotated_tag_on_github_is_followed_to_its_commit(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    del fake_github.tags[VERSION]
    fake_github.annotated_refs[VERSION] = "ab" * 20
    fake_github.annotated["ab" * 20] = source_repo.head
    assert release(world, fake_github)[0] == 0
    assert_complete(fake_github, source_repo)


def test_token_from_a_file_is_used_and_never_shown(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(fake_github.token + "\n")
    world.environment.env = {"GITHUB_REPOSITORY": fake_github.repo}
    code, out, err = release(world, fake_github, token_file=str(token_file))
    assert (code, err) == (0, "")
    assert fake_github.token not in out


def test_rejected_token_is_one_line_without_the_token(
    world: World, fake_github: FakeGitHub
) -> None:
    world.environment.env = {"GITHUB_TOKEN": "ghp_wrong", "GITHUB_REPOSITORY": fake_github.repo}
    code, out, err = release(world, fake_github)
    one_line_error(code, err)
    assert "401" in err and "Bad credentials" in err
    assert "ghp_wrong" not in out + err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("dirty", "working tree is not clean"),
        ("untagged-head", "names commit"),
        ("no-tag", "tag 0.1.5 does not exist"),
        ("stale-artifact", "is not what a clean checkout of tag 0.1.5 builds"),
        ("missing-artifact", "does not exist; build it first"),
        ("no-token", "no GitHub token"),
        ("bad-version", "invalid version 'v0.1.5'"),
        ("drift", "toolchain differs from toolchain.lock: gcc 12.3.0-1"),
        ("tag-not-pushed", "is not on GitHub"),
        ("tag-elsewhere-on-github", "on GitHub names commit"),
        ("kernel-version", "kernel/VERSION says 0.1.4 but the release is 0.1.5"),
    ],
)
def test_checks_before_publishing_refuse_with_one_line(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo, change: str, message: str
) -> None:
    options: dict[str, object] = {}
    root = source_repo.root
    if change == "dirty":
        (root / "kernel" / "kernel.c").write_text("/* uncommitted */\n")
    elif change == "untagged-head":
        source_repo.commit("/* after the tag */\n", "later work")
    elif change == "no-tag":
        source_repo.commit("/* next */\n", "next")
        fake_github.tags.clear()
        options["version"] = "0.1.5"
        git(root, "tag", "-d", VERSION)
    elif change == "stale-artifact":
        source_repo.artifact.write_bytes(gzip.compress(b"old", mtime=0))
    elif change == "missing-artifact":
        source_repo.artifact.unlink()
    elif change == "no-token":
        world.environment.env = {"GITHUB_REPOSITORY": fake_github.repo}
    elif change == "bad-version":
        options["version"] = "v0.1.5"
    elif change == "drift":
        world.environment.probe = lambda names: {n: "12.3.0-1" for n in names}
    elif change == "tag-not-pushed":
        fake_github.tags.clear()
    elif change == "tag-elsewhere-on-github":
        fake_github.tags[VERSION] = "cd" * 20
    elif change == "kernel-version":
        (root / "kernel" / "VERSION").write_text("0.1.4\n")
        git(root, "commit", "-q", "-am", "wrong version")
        git(root, "tag", "-f", "-a", VERSION, "-m", "moved")
        source_repo.build()
    code, _, err = release(world, fake_github, **options)
    one_line_error(code, err)
    assert message in err
    assert fake_github.writes() == [] and fake_github.releases == []


def test_dry_run_without_a_token_checks_locally_only(world: World, fake_github: FakeGitHub) -> None:
    world.environment.env = {"GITHUB_REPOSITORY": fake_github.repo}
    code, out, err = release(world, fake_github, dry_run=True)
    assert (code, err) == (0, "")
    assert "would publish test-vm.xen.gz sha256" in out
    assert "the release on GitHub was not inspected" in out
    assert fake_github.requests == []


def test_unreachable_api_is_a_one_line_error(world: World, fake_github: FakeGitHub) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    code, _, err = release(world, fake_github, api_url=f"http://127.0.0.1:{port}/api/v3")
    one_line_error(code, err)
    assert code == ExitCode.NETWORK
    assert f"127.0.0.1 refused the connection: http://127.0.0.1:{port}/api/v3/repos/" in err
    assert "Max retries" not in err and "NewConnectionError" not in err
    assert fake_github.token not in err

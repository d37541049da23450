"""Releases survive GitHub's read-after-write lag and rate-limited writes; every error names the
step and the URL without the token. GitHub is the local fake (tests/release/fake_github.py),
whose `read_lag` makes just-written releases and assets answer 404 for some reads."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from github import GithubException
from xen_test_release.commands import ReleaseOptions, release_command
from xen_test_release.errors import run_cli
from xen_test_release.github_release import Patience, rate_limit_wait

from tests.release.conftest import VERSION, SourceRepo, World
from tests.release.fake_github import FakeGitHub
from tests.release.test_release_publish import assert_complete, only_release


@pytest.fixture
def ready(world: World, fake_github: FakeGitHub, source_repo: SourceRepo) -> World:
    fake_github.tags[VERSION] = source_repo.head
    return world


def release(world: World, fake: FakeGitHub) -> tuple[int, str, str]:
    opts = ReleaseOptions(version=VERSION, api_url=fake.api_url)
    err = io.StringIO()
    start = world.out.tell()
    code = run_cli(lambda: release_command(opts, world.environment), stderr=err)
    return code, world.out.getvalue()[start:], err.getvalue()


def test_a_release_survives_reads_that_lag_its_writes(
    ready: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    fake_github.read_lag = 3  # each just-written asset and the published tag: three 404s
    code, out, err = release(ready, fake_github)
    assert (code, err) == (0, ""), err
    assert_complete(fake_github, source_repo)
    assert "published release" in out
    # Three uploads read back and one confirmation, each after three misses: backoff, bounded.
    assert ready.sleeps == [0.5, 1.0, 2.0] * 4


def test_lag_beyond_the_bound_is_one_line_naming_the_step_and_a_rerun_finishes(
    ready: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    fake_github.read_lag = 10
    code, _, err = release(ready, fake_github)
    assert code == 1 and err.count("\n") == 1
    assert re.search(
        r"read back failed \(http://127\.0\.0\.1:\d+/api/v3/repos/.+/assets/\d+\)", err
    )
    assert "still answers 404 15.5 s after the write" in err and "run again" in err
    assert fake_github.token not in err
    fake_github.read_lag = 0
    fake_github.catch_up()
    code, _, err = release(ready, fake_github)
    assert (code, err) == (0, "")
    assert_complete(fake_github, source_repo)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "wait"),
    [
        ("POST", r"/releases$", {"Retry-After": "7"}, 403, 7.0),
        ("POST", r"/assets$", {"Retry-After": "3"}, 429, 3.0),
        ("PATCH", r"/releases/\d+$", {"x-ratelimit-remaining": "0"}, 403, 60.0),
    ],
)
def test_rate_limited_writes_are_retried_after_retry_after(
    ready: World,
    fake_github: FakeGitHub,
    source_repo: SourceRepo,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    wait: float,
) -> None:
    fake_github.fail(
        method, path, status, headers=headers, message="You have exceeded a secondary rate limit"
    )
    code, out, err = release(ready, fake_github)
    assert (code, err) == (0, ""), err
    assert wait in ready.sleeps and "rate limited by GitHub, retrying in" in out
    assert_complete(fake_github, source_repo)


def test_a_403_that_is_not_a_rate_limit_is_not_retried(
    ready: World, fake_github: FakeGitHub
) -> None:
    fake_github.fail("POST", r"/releases$", 403, message="Resource not accessible by integration")
    code, _, err = release(ready, fake_github)
    assert code == 1 and ready.sleeps == []
    assert "create draft failed (" in err and "Resource not accessible" in err


def test_a_limit_longer_than_the_patience_says_when_to_come_back(
    ready: World, fake_github: FakeGitHub
) -> None:
    fake_github.fail("POST", r"/releases$", 429, headers={"Retry-After": "3600"})
    code, _, err = release(ready, fake_github)
    assert code == 1 and "rate limited by GitHub for 3600 s more" in err and ready.sleeps == []


@pytest.mark.parametrize(
    ("method", "path", "step"),
    [
        ("POST", r"/releases$", "create draft"),
        ("POST", r"/assets$", "upload"),
        ("PATCH", r"/releases/\d+$", "publish"),
        ("GET", r"/releases/assets/\d+$", "read back"),
    ],
)
def test_every_error_names_its_step_and_url_without_the_token(
    ready: World, fake_github: FakeGitHub, method: str, path: str, step: str
) -> None:
    fake_github.fail(method, path, 422, times=20)
    code, _, err = release(ready, fake_github)
    assert code == 1 and err.count("\n") == 1, err
    assert re.search(
        rf"^release: error: {step} failed \({re.escape(fake_github.web_url)}/\S+\)", err
    )
    assert fake_github.token not in err


def test_delete_errors_name_the_step(
    ready: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    fake_github.fail("POST", r"/assets$", 500, partial_upload=True)  # leaves a broken upload
    assert release(ready, fake_github)[0] == 1
    fake_github.fail("DELETE", r"/releases/assets/\d+$", 422)
    code, _, err = release(ready, fake_github)
    assert code == 1 and "release: error: delete failed (" in err
    assert only_release(fake_github).draft


def test_rate_limit_wait_reads_githubs_headers() -> None:
    def refusal(status: int, headers: dict[str, str], message: str = "") -> GithubException:
        return GithubException(status, {"message": message}, headers)

    assert rate_limit_wait(refusal(429, {"Retry-After": "5"})) == 5.0
    assert (
        rate_limit_wait(
            refusal(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "110"}), now=100
        )
        == 11.0
    )
    assert rate_limit_wait(refusal(403, {}, "API rate limit exceeded")) == 60.0
    assert rate_limit_wait(refusal(403, {}, "Must have admin rights")) is None
    assert rate_limit_wait(refusal(500, {"Retry-After": "5"})) is None


def test_patience_defaults_are_bounded() -> None:
    patience = Patience()
    assert sum(patience.read_delays) <= 30 and patience.write_retries <= 5
    assert dataclasses.replace(patience, write_retries=0).write_retries == 0

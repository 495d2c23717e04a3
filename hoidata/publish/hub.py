"""The upload: the repository tree sent as one dataset repo through ``HfApi``, with Hub failures told
in one line that never holds the token."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from hoidata import __version__
from hoidata.errors import HoidataError
from hoidata.publish.sizes import DEFAULT_MAX_SHARD_SIZE
from hoidata.publish.source import SHARD_NAME
from hoidata.publish.tree import build_repo_tree

# remote files a new tree replaces: stale shards must never mix into the card's ``data/{split}-*`` globs
REPLACED_REMOTE_FILES = ["data/*", "assets/*", "hoidata_manifest*"]


@dataclass
class PushResult:
    tree_dir: Path
    files: list[Path]
    url: str | None = None  # the dataset page; None for a dry run
    commit: str | None = None


def _redact(text: str, secrets: Sequence[str | None]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _public_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part, for messages."""
    parts = urlsplit(endpoint)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if "@" in parts.netloc else endpoint


def hub_error(
    e: BaseException, doing: str, repo_id: str, endpoint: str, secrets: Sequence[str | None]
) -> HoidataError:
    """One line, no token: what failed, and what to do about it."""
    if isinstance(e, OfflineModeIsEnabled):
        msg = f"{doing}: HF_HUB_OFFLINE is set, unset it to upload (or use --dry-run)"
    elif isinstance(e, HfHubHTTPError) and e.response is not None:
        code = e.response.status_code
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if code == 401:
            msg = (
                f"{doing}: the Hub refused the token (HTTP 401); pass --token, set HF_TOKEN or run "
                "`hf auth login`"
            )
        elif code == 403:
            msg = f"{doing}: the token may not write to {repo_id} (HTTP 403): {first}"
        else:
            msg = f"{doing}: the Hub answered HTTP {code}: {first}"
    else:
        cause: BaseException = e
        while cause.__cause__ is not None and str(cause).startswith("Error while uploading"):
            cause = cause.__cause__
        detail = " ".join(str(cause).split()) or type(cause).__name__
        if isinstance(cause, (ConnectionError, TimeoutError)) or "connect" in type(cause).__name__.lower():
            msg = f"{doing}: cannot reach the Hub at {_public_endpoint(endpoint)} ({detail})"
        else:
            msg = f"{doing}: {type(cause).__name__}: {detail}"
    return HoidataError(_redact(msg, secrets))


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HoidataError(f"--repo-id {repo_id!r} is not a valid repository id: {e}") from None
    if "/" not in repo_id:
        raise HoidataError(f"--repo-id must be NAMESPACE/NAME (user or organisation), got {repo_id!r}")


def push(
    dataset_dirs: Path | str | Sequence[Path | str],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    dry_run_dir: Path | str | None = None,
    staging_dir: Path | str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    examples: int = 3,
    image_root: Path | str | None = None,
    license: str | None = None,
    on_built: Callable[[Path, list[Path]], None] | None = None,
) -> PushResult:
    """Build the repository tree and upload it as the dataset repo ``repo_id``.

    ``dry_run_dir``: build the tree there and stop (no network, no token needed). Otherwise the tree is
    built into ``staging_dir`` (kept) or a temporary folder (removed), then uploaded with
    ``HfApi.upload_folder``. That is the resumable path in huggingface_hub 2.x (``upload_large_folder``
    no longer exists): with hf_xet installed it uploads in a background pipeline with retries, commits
    in batches, and a re-run skips files already committed and chunks already stored; without hf_xet it
    falls back to one commit over plain LFS, with retried requests, whose re-run skips LFS objects the
    Hub already has. Because the tree is built deterministically, a re-run after a failure re-sends
    (almost) nothing. Remote files under ``data/``, ``assets/`` and ``hoidata_manifest*`` that the new
    tree lacks are deleted in the same upload, so stale shards never mix into the ``data/{split}-*``
    globs of the card. The token (``token``, else ``HF_TOKEN``, else the cached login) is checked
    before the build and never appears in messages.
    """
    _check_repo_id(repo_id)
    build: dict[str, Any] = dict(
        repo_id=repo_id,
        max_shard_size=max_shard_size,
        examples=examples,
        image_root=image_root,
        license=license,
    )
    if dry_run_dir is not None:
        files = build_repo_tree(dataset_dirs, dry_run_dir, **build)
        if on_built:
            on_built(Path(dry_run_dir), files)
        return PushResult(Path(dry_run_dir), files)

    secret = token or get_token()
    secrets = [token, get_token()]
    if not secret:
        raise HoidataError("no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=secret)
    endpoint = api.endpoint or constants.ENDPOINT

    def hub(doing: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (KeyboardInterrupt, HoidataError):
            raise
        except Exception as e:
            raise hub_error(e, doing, repo_id, endpoint, secrets) from e

    hub("checking the token", api.whoami)  # fail before a long build, not after it
    with tempfile.TemporaryDirectory(prefix="hoidata-push-") as scratch:
        tree = Path(staging_dir) if staging_dir is not None else Path(scratch) / "tree"
        files = build_repo_tree(dataset_dirs, tree, **build)
        if on_built:
            on_built(tree, files)
        url = hub(
            f"creating {repo_id}",
            lambda: api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True),
        )
        if revision and not revision.startswith("refs/"):
            hub(
                f"creating branch {revision}",
                lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
            )
        splits = sorted({m.group("split") for f in files if (m := SHARD_NAME.match(f.as_posix()))})
        info = hub(
            f"uploading to {repo_id}",
            lambda: api.upload_folder(
                repo_id=repo_id,
                folder_path=tree,
                repo_type="dataset",
                revision=revision,
                commit_message=f"Upload {', '.join(splits)} with hoidata {__version__}",
                delete_patterns=REPLACED_REMOTE_FILES,
            ),
        )
    return PushResult(tree, files, url=str(url), commit=getattr(info, "oid", None))

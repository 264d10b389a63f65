"""Hash-pin a model: resolve, lock, fetch and verify every file by SHA-256.

Flow (see ARCHITECTURE.md): `pin` resolves `[model].revision` to an immutable commit,
downloads the files selected by `include`/`exclude` at that commit, hashes every byte,
cross-checks each file against the source's own metadata (the hub's LFS sha256, or the
git blob sha1 for non-LFS files) and writes `model/model.lock.json` atomically. `fetch`
materialises exactly the locked files from a content-addressed cache, verifying each
before it becomes visible. `verify` reports every missing, changed and extra file of a
directory.

One module per job: `lock` (the lock file and its digests), `sources` (hub and local
directory behind `ModelSource`, file selection), `cache` (the content-addressed cache),
`pin`, `fetch` and `directory` (a directory against the lock). The public names are
re-exported here: callers write `from release import modelpin` and `modelpin.pin(...)`.
"""

from __future__ import annotations

from release.modelpin.cache import Cache
from release.modelpin.directory import VerifyResult, verify, verify_dir
from release.modelpin.fetch import FetchResult, default_model_dir, fetch
from release.modelpin.lock import (
    IGNORED,
    LOCK_SCHEMA,
    LockedFile,
    ModelLock,
    RuntimeConverter,
    RuntimeModel,
    RuntimeSource,
    check_lock_matches_config,
    lock_bytes,
    parse_lock,
    path_key,
    read_lock,
    root_digest,
    shipped,
)
from release.modelpin.pin import PinResult, pin
from release.modelpin.sources import (
    HubSource,
    LocalSource,
    ModelSource,
    RemoteFile,
    Resolved,
    git_tree_id,
    missing_model_dir,
    require_local_source,
    select,
    source_for,
)

__all__ = [
    "IGNORED",
    "LOCK_SCHEMA",
    "Cache",
    "FetchResult",
    "HubSource",
    "LocalSource",
    "LockedFile",
    "ModelLock",
    "ModelSource",
    "PinResult",
    "RemoteFile",
    "Resolved",
    "RuntimeConverter",
    "RuntimeModel",
    "RuntimeSource",
    "VerifyResult",
    "check_lock_matches_config",
    "default_model_dir",
    "fetch",
    "git_tree_id",
    "lock_bytes",
    "missing_model_dir",
    "parse_lock",
    "path_key",
    "pin",
    "read_lock",
    "require_local_source",
    "root_digest",
    "select",
    "shipped",
    "source_for",
    "verify",
    "verify_dir",
]

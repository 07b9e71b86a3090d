"""The host-wide account lock: where it lives, what it is keyed by, and that a deleted file lets nobody in.

A real second process holds the lock (the kernel's flock and abstract-socket semantics are the point), and
LA_LOCK_DIR points every lock at the test's own directory.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from laptop_agents.core.errors import AlreadyRunningError
from laptop_agents.session import lock as lock_mod
from laptop_agents.session.lock import AccountKey, AccountLock, LockInfo, PidLock, resolve_lock_dir

# a fingerprint of this test run's own: the lock's abstract socket is shared by the whole host (network namespace)
FINGERPRINT = "sha256:" + secrets.token_hex(8)
KEY = AccountKey.live(FINGERPRINT, "https://fapi.bitunix.com")

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from laptop_agents.session.lock import AccountKey, AccountLock
    lock = AccountLock(Path(sys.argv[1]), AccountKey.live(sys.argv[2], "https://fapi.bitunix.com"))
    lock.acquire({"run_id": "holder-run", "workspace": "/srv/other/.workspace", "mode": "live"})
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
""")


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding the account lock in tmp_path/locks."""
    lock_dir = tmp_path / "locks"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_dir), FINGERPRINT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield lock_dir, proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def test_second_holder_refused_naming_pid_and_workspace_even_after_the_file_is_deleted(holder, tmp_path: Path) -> None:
    lock_dir, proc = holder
    path = lock_dir / KEY.file_name
    with pytest.raises(AlreadyRunningError) as first:
        AccountLock(lock_dir, KEY).acquire({"workspace": "/here"})
    assert f"pid {proc.pid}" in str(first.value) and "/srv/other/.workspace" in str(first.value)
    path.unlink()  # an operator (or a cleanup script) deletes the lock file
    with pytest.raises(AlreadyRunningError):
        AccountLock(lock_dir, KEY).acquire({"workspace": "/here"})
    path.write_text("{}")  # ... or replaces it with a fresh, unlocked file
    with pytest.raises(AlreadyRunningError):
        AccountLock(lock_dir, KEY).acquire({"workspace": "/here"})
    # a session that resolved another lock directory (systemd's PrivateTmp fallback) meets it all the same
    with pytest.raises(AlreadyRunningError):
        AccountLock(tmp_path / "another-lock-dir", KEY).acquire({"workspace": "/here"})


def test_lock_is_free_again_once_the_holder_dies(holder) -> None:
    lock_dir, proc = holder
    proc.kill()
    proc.wait(timeout=10)
    lock = AccountLock(lock_dir, KEY)
    lock.acquire({"workspace": "/here"})
    assert LockInfo.read(lock_dir / KEY.file_name).workspace == "/here"  # type: ignore[union-attr]
    lock.release()
    assert not (lock_dir / KEY.file_name).exists()


def test_holder_takes_back_a_deleted_or_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "async_session.lock"
    lock = PidLock(path)
    lock.acquire({"run_id": "r1", "workspace": str(tmp_path)})
    path.unlink()
    assert lock.verify() and lock_mod.lock_is_held(path)
    assert LockInfo.read(path).run_id == "r1"  # type: ignore[union-attr]
    path.unlink()
    path.write_text('{"pid": 1}')  # replaced by a file nobody holds
    assert lock.verify() and lock_mod.lock_is_held(path) and LockInfo.read(path).run_id == "r1"  # type: ignore[union-attr]
    lock.release()
    assert not path.exists()


def test_account_key_names_the_account_never_the_secret() -> None:
    same = [AccountKey.live(FINGERPRINT, url) for url in
            ("https://fapi.bitunix.com", "https://FAPI.bitunix.com/", "https://fapi.bitunix.com:443/api")]
    assert {k.file_name for k in same} == {KEY.file_name}
    assert AccountKey.live(FINGERPRINT, "http://127.0.0.1:9001").file_name != KEY.file_name
    assert AccountKey.live("sha256:" + "f" * 16, "https://fapi.bitunix.com").file_name != KEY.file_name
    assert FINGERPRINT[7:] not in KEY.file_name  # the path shows a hash of the identity only


def test_paper_account_is_the_real_state_directory(tmp_path: Path) -> None:
    (tmp_path / "ws" / "paper").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "ws")
    assert AccountKey.paper(tmp_path / "link" / "paper").file_name == AccountKey.paper(tmp_path / "ws" / "paper").file_name
    assert AccountKey.paper(tmp_path / "ws" / ".." / "ws" / "paper").file_name == AccountKey.paper(tmp_path / "ws" / "paper").file_name


def test_lock_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_lock_dir("/from/setting", {"LA_LOCK_DIR": str(tmp_path / "env")}) == tmp_path / "env"
    assert resolve_lock_dir("/from/setting", {}) == Path("/from/setting")
    blocked = tmp_path / "no-such-parent" / "laptop-agents"  # its parent does not exist: never created
    monkeypatch.setattr(lock_mod, "DEFAULT_LOCK_DIRS", (blocked,))
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    assert resolve_lock_dir(None, {"XDG_RUNTIME_DIR": str(xdg)}) == xdg / "laptop-agents"
    assert not blocked.parent.exists()
    assert resolve_lock_dir(None, {}).name.startswith("laptop-agents-")

"""The worker's data dir: a folder segstream can write, and with rocksdb:// one live worker per
app id, told by a lock the kernel drops with its process."""

import os
import signal
import subprocess
import sys

import pytest

from stream.config import SettingError, load_settings
from stream.data_dir import claim, lock

HOLD = """
import sys, time
from stream.config import load_settings
from stream.data_dir import claim, lock
with claim(load_settings(env={}, data_dir=sys.argv[1], app_id="shop", store="rocksdb://")):
    print("held", flush=True)
    time.sleep(120)
"""


def settings_on(folder, **values):
    return load_settings(env={}, **{"data_dir": str(folder), "app_id": "shop", "store": "rocksdb://", **values})


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of app id "shop" on ``tmp_path``."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_lock_names_the_holder_and_a_killed_holder_blocks_no_one(tmp_path, holder):
    with pytest.raises(SettingError) as refused:
        claim(settings_on(tmp_path))
    assert refused.value.name == "data_dir"
    assert f"data dir {tmp_path} is in use by another segstream worker (pid {holder.pid}) of app id 'shop'" in str(refused.value)
    assert str(refused.value).endswith("give each worker its own SEGSTREAM_DATA_DIR")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "shop.lock").read_text() == f"{holder.pid}\n"  # left behind, and harmless
    with claim(settings_on(tmp_path)):
        assert (tmp_path / "shop.lock").read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / "shop.lock").exists()


def test_other_app_ids_and_the_memory_store_share_a_data_dir(tmp_path, holder):
    with claim(settings_on(tmp_path, app_id="other")), claim(settings_on(tmp_path, store="memory://")):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "other.lock", "shop", "shop.lock"]


def test_a_file_opened_before_its_holder_removed_it_is_not_locked_in_its_place(tmp_path, monkeypatch):
    first = claim(settings_on(tmp_path))
    stale = [os.open(tmp_path / "shop.lock", os.O_RDWR)]
    first.release()  # the file is gone: a lock on the copy opened before would lock nothing anyone sees
    real_open = os.open

    def open_the_stale_one_first(path, *args):
        return stale.pop() if stale else real_open(path, *args)

    monkeypatch.setattr(os, "open", open_the_stale_one_first)
    held = lock(tmp_path / "shop.lock", "shop")
    try:
        assert not stale and os.path.samestat(os.fstat(held.fd), os.stat(tmp_path / "shop.lock"))
    finally:
        held.release()


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])  # Faust makes its folders with either
def test_a_folder_segstream_cannot_write_is_named(tmp_path, unwritable_folder, store):
    folder, reason = unwritable_folder
    with pytest.raises(SettingError) as refused:
        claim(settings_on(folder, store=store))
    assert str(refused.value).startswith(f"SEGSTREAM_DATA_DIR: {folder}")
    assert str(refused.value).endswith(f"is not a folder segstream can write: {reason}")


def test_a_file_in_place_of_the_folder_and_braces_faust_would_expand_are_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingError, match="is not a folder segstream can write: it is a file"):
        claim(settings_on(tmp_path / "file"))
    with pytest.raises(SettingError, match="must not contain '{' or '}': Faust expands them"):
        claim(settings_on(tmp_path / "{conf.id}"))

"""A worker's copy of the item-vectors topic: rows in, tombstones out, foreign records skipped."""

from __future__ import annotations

import numpy as np

from stream.core.catalogue import CatalogueItem, CatalogueRows


def test_rows_tombstones_and_records_no_worker_wrote():
    rows = CatalogueRows(dim=2)
    item = CatalogueItem(np.array([0.6, 0.8], dtype=np.float32), ("Drama",))
    rows.put_row(b"i1", item.to_bytes())
    assert rows.knows("i1") and rows.get("i1").categories == ("Drama",) and len(rows) == 1
    for key, raw in ((b"i2", b"not a row"), (b"i4", b"\x01"), (b"i3", CatalogueItem(np.ones(3, np.float32), ()).to_bytes()), (None, item.to_bytes())):
        rows.put_row(key, raw)
    assert len(rows) == 1
    rows.put_row(b"i1", None)
    assert not rows.knows("i1") and rows.get("i1") is None


def test_a_row_keeps_the_title_and_rows_written_before_titles_read_with_none():
    item = CatalogueItem(np.array([0.6, 0.8], dtype=np.float32), ("Drama", "Romance"), "Amélie (2001)")
    back = CatalogueItem.from_bytes(item.to_bytes())
    assert (back.title, back.categories, back.vector.tolist()) == ("Amélie (2001)", ("Drama", "Romance"), item.vector.tolist())
    head = b'{"c":["Drama"]}'  # the row format before titles: no "t"
    old = CatalogueItem.from_bytes(len(head).to_bytes(4, "little") + head + item.vector.astype("<f4").tobytes())
    assert (old.title, old.categories, old.vector.tolist()) == ("", ("Drama",), item.vector.tolist())


def test_decoded_items_are_reused_replaced_with_their_row_and_bounded(monkeypatch):
    import stream.core.catalogue as catalogue

    monkeypatch.setattr(catalogue, "DECODED_MAX", 2)
    rows = CatalogueRows(dim=3)
    rows.put("a", CatalogueItem(np.array([1, 0, 0], np.float32), ("x",)))
    assert rows.get("a") is rows.get("a")  # decoded once
    rows.put_row(b"a", CatalogueItem(np.array([0, 1, 0], np.float32), ("y",)).to_bytes())
    assert rows.get("a").categories == ("y",) and rows.get("a").vector[1] == 1.0
    for key in "bc":
        rows.put(key, CatalogueItem(np.array([0, 0, 1], np.float32), ()))
        rows.get(key)
    assert len(rows.decoded) == 2 and set(rows.decoded) == {b"b", b"c"}  # the oldest went
    rows.put_row(b"c", None)
    assert rows.get("c") is None and b"c" not in rows.decoded

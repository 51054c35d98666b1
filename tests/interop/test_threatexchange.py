"""Interoperability with Meta's python-threatexchange (the library HMA builds on).

Our exact-mode PDQ must equal theirs bit for bit, and a bank exported in the
``te`` format must be readable by their ``local_file`` exchange.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from threatexchange.exchanges.impl import file_api as te_file
from threatexchange.signal_type.pdq import signal as te_pdq

from safestream.banks.formats import FORMATS, HashRecord
from safestream.demo import synthetic_image
from safestream.signals.hashing import hash_file


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_exact_pdq_equals_threatexchange(tmp_path: Path, seed: int, ext: str) -> None:
    path = tmp_path / f"img.{ext}"
    synthetic_image(seed, (500 + 37 * seed, 380)).convert("RGB").save(path)
    ours = hash_file(path, mode="exact").pdq
    theirs = te_pdq.PdqSignal.hash_from_file(path)
    assert ours == theirs


def test_te_export_reads_in_threatexchange_local_file(tmp_path: Path) -> None:
    records = [HashRecord("pdq", f"{i:064x}") for i in (1, 2, 3)]
    buf = io.StringIO()
    FORMATS["te"].write(records, buf)
    path = tmp_path / "bank.txt"
    path.write_text(buf.getvalue())
    config = te_file.FileCollaborationConfig(
        name="safestream-export", api="local_file", enabled=True, filename=str(path)
    )
    api = te_file.LocalFileSignalExchangeAPI.for_collab(config)
    deltas = list(api.fetch_iter([te_pdq.PdqSignal], None))
    keys = {key for delta in deltas for key in delta.updates}
    assert keys == {("pdq", r.value) for r in records}

"""SIGUSR2 memory snapshots (ivr.app.dump_tracemalloc_snapshot): written where asked, loadable, numbered."""

import tracemalloc

from ivr.app import dump_tracemalloc_snapshot


def test_snapshot_written_and_loadable(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_TRACEMALLOC_DIR", str(tmp_path))
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(1)
    try:
        keep = [bytearray(4096) for _ in range(8)]  # something to see
        dump_tracemalloc_snapshot()
        dump_tracemalloc_snapshot()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    files = sorted(tmp_path.glob("ivr-*.tracemalloc"))
    assert len(files) == 2 and files[0].name != files[1].name
    snap = tracemalloc.Snapshot.load(str(files[1]))
    assert sum(s.size for s in snap.statistics("filename")) >= sum(len(b) for b in keep)

"""The fixed mmap threshold keeps large blocks out of the heap even after one was freed (glibc's default
slides the threshold up on that free, so the second block would come from the heap)."""

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import ctypes, sys
    sys.path.insert(0, {root!r})
    from ivr.malloc_tuning import tune_glibc_malloc

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    tuned = sys.argv[1] == "tuned"
    if tuned:
        assert tune_glibc_malloc()
    size = 1_000_000
    libc.free(libc.malloc(size))          # an mmapped block, freed: glibc's default raises its threshold here
    before = libc.mallinfo2().hblkhd
    p = libc.malloc(size)
    print(libc.mallinfo2().hblkhd - before >= size)
    libc.free(p)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("mode,mmapped", [("default", False), ("tuned", True)])
def test_large_block_after_a_free_is_mmapped_only_when_tuned(mode, mmapped):
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=root), mode], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(mmapped)


def test_operator_environment_wins(monkeypatch):
    from ivr.malloc_tuning import tune_glibc_malloc

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_glibc_malloc() is False

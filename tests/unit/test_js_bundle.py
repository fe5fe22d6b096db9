"""The committed JsSIP bundle (ivr/web/static/jssip.min.js) is exactly what the pinned build produces:
scripts/build-js.sh from web/package-lock.json (JsSIP 3.13.8, esbuild 0.28.2)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "ivr" / "web" / "static" / "jssip.min.js"
PINS = {"jssip": "3.13.8", "esbuild": "0.28.2"}


def test_the_lock_pins_jssip_and_esbuild_with_integrity_hashes():
    pkg = json.loads((REPO / "web" / "package.json").read_text())
    assert pkg["dependencies"] == {"jssip": PINS["jssip"]}
    assert pkg["devDependencies"] == {"esbuild": PINS["esbuild"]}
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())["packages"]
    for name, version in PINS.items():
        entry = lock[f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-")
    for path, entry in lock.items():      # every package of the build is pinned by its hash
        assert not path or entry.get("integrity", "").startswith("sha512-"), path


def test_the_committed_bundle_is_jssip_of_the_lock():
    text = BUNDLE.read_text(encoding="utf-8")
    assert text.startswith(f"/* JsSIP {PINS['jssip']} (MIT")
    assert f'version:"{PINS["jssip"]}"' in text and "var JsSIP=" in text


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (Node.js 20 builds the bundle)")
def test_the_pinned_build_reproduces_the_committed_bundle(tmp_path):
    out = tmp_path / "jssip.min.js"
    r = subprocess.run(["bash", str(REPO / "scripts" / "build-js.sh"), str(out)], check=False,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes() == BUNDLE.read_bytes(), "the committed bundle differs: run scripts/build-js.sh"

"""Language on a real call (the shipped bilingual line 110, flows/bilingual.yaml): choosing French in the
IVR, or being a French-speaking customer in the CRM, switches the prompt variants and the channel's
language, and the caller hears Asterisk's French sound files. What was played, and in which language,
is read from Asterisk's own log ("Playing 'hello.gsm' (language 'fr')")."""

from __future__ import annotations

import asyncio
import re

import pytest

from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

FRENCH_CUSTOMER = "+12125550104"      # config/crm/sample_customers.yaml: Élodie Martin, language fr


def _played(asterisk, channel_name: str) -> list[tuple[str, str]]:
    """(file, language) of everything Asterisk played on this channel, from its messages log."""
    text = (asterisk.host_dir / "log" / "messages.log").read_text(errors="replace")
    pat = re.compile(r"<" + re.escape(channel_name) + r"> Playing '([^']+)' \(language '([^']+)'\)")
    return pat.findall(text)


def _sound_file(asterisk, lang: str, file: str):
    """The file Asterisk finds for `file` in `lang` inside its chroot (following Debian's alternatives
    links, which are absolute paths inside the chroot), or None."""
    root = asterisk.root
    path = root / "usr/share/asterisk/sounds" / lang
    for _ in range(5):
        if not path.is_symlink():
            break
        target = path.readlink()
        path = root / str(target).lstrip("/") if target.is_absolute() else path.parent / target
    f = path / file
    return f if f.is_file() else None


async def _call(app, cfg, steps, number="caller"):
    """Call the bilingual line; returns (channel name, the app's session) once the caller waits in the queue."""
    proc = SippProcess(SippCaller("110", steps=steps, caller_number=number), cfg.asterisk.sip_port, timeout=30)
    qc = await wait_for(lambda: next(iter(app.acd.calls.values()), None), 15, what="the caller in the queue")
    session = qc.session
    return proc, session


@pytest.mark.parametrize(("steps", "number", "lang", "welcome"), [
    ([("pause", 1500), ("dtmf", "2"), ("pause", 5000)], "caller", "fr", "hello"),          # picks French
    ([("pause", 1500), ("dtmf", "1"), ("pause", 5000)], "caller", "en", "hello-world"),    # picks English
    ([("pause", 5000)], FRENCH_CUSTOMER, "fr", "hello"),                                   # the CRM says French
], ids=["menu-french", "menu-english", "crm-french"])
async def test_the_caller_hears_the_language_chosen_or_known(asterisk, flow_cfg, steps, number, lang, welcome):
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        proc, session = await _call(app, flow_cfg, steps, number)
        name = session.channel.name
        # the channel's own language follows: what Asterisk plays by itself on it is in that language too
        ch = await ari.channel(session.channel_id)
        assert ch.language == lang, ch.language
        r = await asyncio.to_thread(proc.wait)
        assert r.ok, r.stderr
        played = await wait_for(lambda: _played(asterisk, name) or None, 5, what="playbacks in Asterisk's log")
        assert (f"{welcome}.gsm", lang) in played, played
        # and that language's own recording exists for it (French: fr -> fr_CA_f_June, from install.sh)
        found = _sound_file(asterisk, lang, f"{welcome}.gsm")
        assert found is not None and (lang != "fr" or "fr_CA" in str(found)), found
        if lang == "fr":
            assert ("hello-world.gsm", "en") not in played and ("hello-world.gsm", "fr") not in played, played
            if number == FRENCH_CUSTOMER:
                assert not any(f.startswith("vm-press") for f, _ in played), played   # no language menu
        await assert_no_leaks(ari)

"""A class in Chromium, every control through the page's buttons: headless Chromium tabs join a class-mode session
through the controller's pages and a real media node on 127.0.0.1.

- a student joins muted (its microphone button disabled, the page says to raise a hand) and cannot share a screen;
  it raises its hand with the button and the host's list shows the hand; the host allows it to speak, it unmutes,
  and the host hears it and sees it marked as speaking;
- an observer is in the host's list only, not in the student's, and sends nothing;
- the host promotes the student (it may now share its screen), mutes everyone, locks the class (a newcomer is
  refused, and its page does not retry), and ends it for everyone (the student's page stops, no retry);
- on a phone-sized viewport (390x844) the controls and host buttons are on screen, large enough to tap, and the
  page does not scroll sideways.
Bounded: one browser, four tabs, about 20 s."""

from __future__ import annotations

from pathlib import Path

from tests.browser import MEDIA_FLAGS, Browser, Page
from tests.meetings.browser_world import STATS, ServerClient, enter, open_session
from tests.meetings.nodes import meeting_node

NODE_ID = "media-class"
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


def _li(participant: str, inside: str = "", state: str = "") -> str:
    """Whether the page's list has an entry for a participant (or something inside it), as a JavaScript expression."""
    return f"document.querySelector('#people li{state}[data-participant=\"{participant}\"]{inside}') !== null"


def _st(expression: str) -> str:
    return f"window.ketnoiMeeting.{expression}"


async def _audio_from(page: Page, participant: str) -> float:
    energy: float = await page.evaluate(
        f"""{STATS}.then(s => s.inbound.filter(x => x.participant === '{participant}' && x.kind === 'audio')
            .reduce((a, x) => a + x.totalAudioEnergy, 0))"""
    )
    return energy


async def _usable_on_a_phone(page: Page, selector: str) -> None:
    """Every visible button under `selector` is inside the 390 px width and at least 40 px tall; no sideways
    scrolling."""
    await page.send("Emulation.setDeviceMetricsOverride", PHONE)
    await page.wait_until("window.innerWidth === 390", timeout=5)
    boxes = await page.evaluate(
        f"""[...document.querySelectorAll('{selector} button')].filter(b => b.offsetParent !== null)
            .map(b => {{ const r = b.getBoundingClientRect(); return [b.id || b.dataset.host || b.dataset.action,
                r.left, r.right, r.height]; }})"""
    )
    assert boxes, selector
    for name, left, right, height in boxes:
        assert left >= 0 and right <= 390 and height >= 40, (name, left, right, height)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390


async def test_a_class_through_the_pages_buttons(aiohttp_client: ServerClient, tmp_path: Path) -> None:
    world = await open_session(aiohttp_client, tmp_path, mode="class")
    observer_url = await world.link(world.rooms[2], "observer")
    async with meeting_node(secret=world.secret, node_id=NODE_ID) as node:
        world.report(node, NODE_ID)
        async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
            host, student = browser.page, await browser.new_page()
            host_id = await enter(host, world.urls[0], "Cô Lan")
            student_id = await enter(student, world.urls[1], "Lớp 5A")
            assert await student.evaluate(_st("welcome.role")) == "student"
            assert await student.evaluate(_st("mutedByHost")) is True
            assert await student.evaluate("document.getElementById('mic-btn').disabled") is True
            assert await student.evaluate("document.getElementById('share-btn').hidden") is True
            assert "giơ tay" in (await student.text("#notice")).lower()
            # Its audio is not forwarded: the host gets the student's video but no audio slot for it.
            await host.wait_until(
                f"{STATS}.then(s => s.inbound.some(x => x.participant === '{student_id}' && x.framesDecoded > 5))",
                timeout=30, interval=0.5,
            )  # fmt: skip
            assert await host.evaluate(f"Object.values({_st('slots')}).filter(s => s.participant === '{student_id}'"
                                       " && s.source === 'microphone').length") == 0  # fmt: skip

            observer = await browser.new_page()
            observer_id = await enter(observer, observer_url)
            await host.wait_until("document.querySelectorAll('#people li').length === 3", timeout=10)
            assert await host.evaluate(_li(observer_id))
            await student.wait_until(f"{_st('roster')}.length === 2", timeout=10)
            assert await student.evaluate(_li(observer_id)) is False
            assert (await observer.evaluate(STATS))["outbound"] == []

            # A hand, then the floor.
            await student.click("#hand-btn")
            await host.wait_until(_li(student_id, " .badge.hand"))
            await host.click(f"#people button[data-action=allow_speak][data-target='{student_id}']")
            await student.wait_until(f"{_st('mutedByHost')} === false && !document.getElementById('mic-btn').disabled")
            assert await student.evaluate(_st("hand")) is False
            await student.click("#mic-btn")
            heard = await _audio_from(host, student_id)
            await host.wait_until(
                f"""{STATS}.then(s => s.inbound.filter(x => x.participant === '{student_id}' && x.kind === 'audio')
                    .reduce((a, x) => a + x.totalAudioEnergy, 0) > {heard})""",
                timeout=20, interval=0.3,
            )  # fmt: skip
            await host.wait_until(_li(student_id, "", ".speaking"),
                                  timeout=20, interval=0.2)  # fmt: skip

            # Promote: the student may now share a screen.
            await host.click(f"#people button[data-action=promote][data-target='{student_id}']")
            await student.wait_until("!document.getElementById('share-btn').hidden", timeout=10)
            assert await student.evaluate(_st("role")) == "presenter"
            # Mute everyone: the student is muted by the host again; the host is not.
            await host.click("#host-panel button[data-host=mute_all]")
            await student.wait_until(f"{_st('mutedByHost')} === true", timeout=10)
            assert await host.evaluate(_st("mutedByHost")) is False

            # On a phone.
            await _usable_on_a_phone(student, "#controls")
            await _usable_on_a_phone(host, "#host-panel")
            await _usable_on_a_phone(host, "#controls")
            await _usable_on_a_phone(host, "#people")

            # Lock: a newcomer is refused and does not retry.
            await host.click("#lock-btn")
            await host.wait_until("!document.getElementById('locked').hidden", timeout=10)
            newcomer = await browser.new_page()
            await newcomer.navigate(world.urls[2])
            await newcomer.wait_for("#join")
            await newcomer.wait_until("document.querySelector('#mic-select').options.length > 0", timeout=15)
            await newcomer.click("#join")
            await newcomer.wait_until("document.getElementById('meeting').dataset.closed === 'locked'", timeout=20)
            assert "khóa" in await newcomer.text("#notice")
            assert await newcomer.evaluate(_st("retryTimer")) is None

            # End for everyone: the pages stop and do not come back; the room is gone from the node.
            await host.click("#host-panel button[data-host=end]")
            for page in (student, observer):
                await page.wait_until("document.getElementById('meeting').dataset.closed === 'ended'", timeout=10)
                assert await page.evaluate(_st("retryTimer")) is None
                assert await page.evaluate("document.getElementById('rejoin').hidden")
            assert "kết thúc" in await student.text("#notice")
            await host.wait_until("document.getElementById('meeting').dataset.closed === 'ended'", timeout=10)
            assert host_id and not node.meetings.rooms

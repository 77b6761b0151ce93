"""Three headless Chromium participants (tabs of one browser, fake camera and microphone) join one session through
the join links and pages, through a real controller and a real media node on 127.0.0.1:
- each decodes the others' video and hears their audio (framesDecoded and audio energy from getStats keep growing);
- an observer (a fourth tab) receives everyone and sends nothing, and only the host's list shows it;
- one shares a screen and the others decode it; one picks another microphone and is still heard;
- the host mutes one: its audio stops reaching the others while the host's keeps coming;
- one mutes itself with its button: its microphone stops being forwarded, and comes back when it unmutes;
- the host removes one with the button next to its name.
Bounded: one browser, four tabs, about 15 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser import MEDIA_FLAGS, Browser
from tests.meetings.browser_world import STATS, ServerClient, enter, hears_and_sees, open_session, stats
from tests.meetings.nodes import meeting_node

NODE_ID = "media-browser"


async def test_three_browsers_see_and_hear_each_other(aiohttp_client: ServerClient, tmp_path: Path) -> None:
    world = await open_session(aiohttp_client, tmp_path)
    observer_url = await world.link(world.rooms[1], "observer")
    async with meeting_node(secret=world.secret, node_id=NODE_ID) as node:
        world.report(node, NODE_ID)
        async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
            pages = [browser.page, await browser.new_page(), await browser.new_page()]
            names = ("Chủ trì", "Trường A", "Trường B")
            ids = [await enter(page, url, name) for page, url, name in zip(pages, world.urls, names, strict=True)]
            assert len(set(ids)) == 3
            # An observer (a fourth tab) receives everyone and sends nothing: no publish connection, no outbound
            # stream, and only the host's list shows it.
            observer = await browser.new_page()
            await enter(observer, observer_url)
            await hears_and_sees(observer, ids)
            assert (await observer.evaluate(STATS))["outbound"] == []
            assert await observer.evaluate("window.ketnoiMeeting.pub === null")
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 4", timeout=10)
            assert await pages[1].evaluate("document.querySelectorAll('#people li').length") == 3
            await observer.click("#leave-btn")
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 3", timeout=10)
            first: list[dict[str, Any]] = []
            for page, me in zip(pages, ids, strict=True):
                first.append(await hears_and_sees(page, [i for i in ids if i != me]))
            # ... and it keeps coming: every stream grows again.
            for page, me, before in zip(pages, ids, first, strict=True):
                later = await stats(page)
                for other in (i for i in ids if i != me):
                    grows = f"""(async () => {{ const s = await {STATS};
                        const v = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'video')
                            .reduce((a, x) => a + x.framesDecoded, 0);
                        const e = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'audio')
                            .reduce((a, x) => a + x.totalAudioEnergy, 0);
                        return v > {later[other]["frames"]} + 10 && e > {later[other]["energy"]}; }})()"""
                    await page.wait_until(grows, timeout=20, interval=0.5)
                    assert later[other]["frames"] >= before[other]["frames"]
            # The second participant shares its screen (a click with a user gesture, as getDisplayMedia requires):
            # the others get it as a wide tile, decoded.
            click = "document.getElementById('share-btn').click()"
            await pages[1].send("Runtime.evaluate", {"expression": click, "userGesture": True})
            for page in (pages[0], pages[2]):
                await page.wait_until(
                    f"""(async () => {{ const s = await {STATS};
                    return s.inbound.some(x => x.participant === '{ids[1]}' && x.source === 'screen'
                        && x.framesDecoded > 5); }})()""",
                    timeout=20, interval=0.5,
                )  # fmt: skip
                assert await page.evaluate("document.querySelector('.tile.screen') !== null")
            # The third participant picks another microphone during the call: the others keep hearing it.
            second_mic = await pages[2].evaluate("document.querySelectorAll('#mic-select option')[1].value")
            await pages[2].fill("#mic-select", second_mic)
            await pages[2].wait_until("window.ketnoiMeeting.mic.label === 'Fake Audio Input 1'", timeout=10)
            before_switch = (await stats(pages[0]))[ids[2]]
            grows = f"""(async () => {{ const s = await {STATS};
                const a = s.inbound.filter(x => x.participant === '{ids[2]}' && x.kind === 'audio');
                return a.reduce((n, x) => n + x.packetsReceived, 0) > {before_switch["audio_packets"]} + 50
                    && a.reduce((n, x) => n + x.totalAudioEnergy, 0) > {before_switch["energy"]}; }})()"""
            await pages[0].wait_until(grows, timeout=10, interval=0.3)  # a second of it: not packets in flight
            # The host mutes the second participant with the button next to its name: its audio stops reaching the
            # third while the host's goes on.
            mid_of = f"""(async () => {{ const s = await {STATS};
                const x = s.inbound.find(x => x.participant === '{ids[1]}' && x.kind === 'audio');
                return x ? x.mid : null;
            }})()"""
            muted_mid = await pages[2].evaluate(mid_of)
            assert muted_mid is not None
            await pages[0].click(f"#people button[data-action=mute][data-target='{ids[1]}']")
            await pages[1].wait_until("window.ketnoiMeeting.mutedByHost === true", timeout=10)
            packets = f"""(async () => {{ const s = await {STATS};
                const x = s.inbound.find(x => x.pc === 'sub' && x.mid === '{muted_mid}');
                return x.packetsReceived; }})()"""
            host_audio = f"""(async () => {{ const s = await {STATS};
                return s.inbound.filter(x => x.participant === '{ids[0]}' && x.kind === 'audio')
                    .reduce((a, x) => a + x.packetsReceived, 0); }})()"""
            await pages[2].wait_until(f"window.ketnoiMeeting.slots['{muted_mid}'].participant === null", timeout=10)
            heard = await pages[2].evaluate(host_audio)  # what was in flight drains during a second of host audio
            await pages[2].wait_until(f"{host_audio}.then(n => n > {heard} + 50)", timeout=10, interval=0.2)
            stopped, heard = await pages[2].evaluate(packets), await pages[2].evaluate(host_audio)
            await pages[2].wait_until(f"{host_audio}.then(n => n > {heard} + 50)", timeout=10, interval=0.2)
            assert await pages[2].evaluate(packets) == stopped
            people = await pages[0].evaluate("document.querySelectorAll('#people li').length")
            assert people == 3
            # The third mutes itself with its button: the host's list says so and the node stops forwarding its
            # microphone (no slot carries it); unmuted, it is heard again.
            mic_slot = f"Object.values(window.ketnoiMeeting.slots).some(s => s.participant === '{ids[2]}'"
            mic_slot += " && s.source === 'microphone')"
            await pages[2].click("#mic-btn")
            await pages[0].wait_until(
                f"window.ketnoiMeeting.roster.some(p => p.id === '{ids[2]}' && p.microphone === false)", timeout=10
            )
            await pages[0].wait_until(f"!{mic_slot}", timeout=10)
            await pages[2].click("#mic-btn")
            await pages[0].wait_until(mic_slot, timeout=10)
            heard = (await stats(pages[0]))[ids[2]]["energy"]
            await pages[0].wait_until(
                f"""{STATS}.then(s => s.inbound.filter(x => x.participant === '{ids[2]}' && x.kind === 'audio')
                    .reduce((a, x) => a + x.totalAudioEnergy, 0) > {heard})""",
                timeout=10, interval=0.3,
            )  # fmt: skip
            # The host removes the third participant with the button next to its name.
            await pages[0].click(f"#people button[data-action=remove][data-target='{ids[2]}']")
            await pages[2].wait_until("document.getElementById('meeting').dataset.closed === 'removed'", timeout=10)
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 2", timeout=10)
            assert "mời bạn ra" in await pages[2].text("#notice")
            assert await pages[2].evaluate("document.getElementById('rejoin').hidden")  # removed: no way back in
            assert not await observer.evaluate("document.getElementById('rejoin').hidden")  # it left: may come back
            assert node.meetings.load().subscribers == 2

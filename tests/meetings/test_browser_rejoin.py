"""Pages rejoin by themselves: headless Chromium participants (tabs of one browser) in a session through the
controller's pages and a real media node on 127.0.0.1.

- A participant's WebSocket is closed from the node's side: its page says it is reconnecting, gets a fresh pass
  from the controller, and comes back as the same participant (same id; no ghost in the host's list or grid);
  video and audio flow again both ways. Its microphone choice, camera off and the host's mute survive the rejoin.
- The media node process stops and starts again on its port: every page rejoins and they see and hear each
  other again.
- A page that cannot get back within its time gives up and says so, offering to join again.
- A removed participant does not come back (no retry scheduled, no new pass asked for), and a page whose
  controller now refuses the link (the session is over) stops with that reason instead of retrying.
Bounded: one browser, two or three tabs, about 30 s."""

from __future__ import annotations

from pathlib import Path

from media.rooms.live import LiveRoom
from tests.browser import MEDIA_FLAGS, Browser, Page
from tests.meetings.browser_world import ServerClient, enter, hears_and_sees, keeps_coming, open_session
from tests.meetings.nodes import Node, meeting_node
from tests.ports import free_port

NODE_ID = "media-rejoin"
STATE = "document.getElementById('meeting').dataset.state"


def _room(node: Node) -> LiveRoom:
    assert len(node.meetings.rooms) == 1
    return next(iter(node.meetings.rooms.values()))


async def _cut(node: Node, participant: str) -> None:
    """Close a participant's WebSocket from the node's side, as a lost network would (no `closed` message)."""
    await _room(node).connections[participant].ws.close()


async def _rejoined(page: Page, times: int) -> None:
    await page.wait_until(f"window.ketnoiMeeting.rejoins === {times} && {STATE} === 'joined'", timeout=30)


async def _remote_tiles(page: Page) -> list[str]:
    tiles: list[str] = await page.evaluate(
        "[...document.querySelectorAll('#grid .tile:not(.self)')].map(t => t.dataset.participant)"
    )
    return tiles


async def test_a_cut_page_rejoins_as_itself_keeping_its_state(aiohttp_client: ServerClient, tmp_path: Path) -> None:
    world = await open_session(aiohttp_client, tmp_path)
    async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
        async with meeting_node(secret=world.secret, node_id=NODE_ID) as node:
            world.report(node, NODE_ID)
            host, guest = browser.page, await browser.new_page()
            host_id = await enter(host, world.urls[0], "Chủ trì")
            guest_id = await enter(guest, world.urls[1], "Trường A")
            await hears_and_sees(host, [guest_id])
            await hears_and_sees(guest, [host_id])
            passes = await guest.evaluate("window.ketnoiMeeting.passes")

            await _cut(node, guest_id)
            await guest.wait_until(f"{STATE} === 'reconnecting'", timeout=10)
            assert "kết nối lại" in await guest.text("#notice")
            await _rejoined(guest, 1)
            assert await guest.evaluate("document.getElementById('meeting').dataset.participant") == guest_id
            assert await guest.evaluate("window.ketnoiMeeting.passes") > passes  # a fresh pass from the controller
            await keeps_coming(host, guest_id)
            await keeps_coming(guest, host_id)
            # No ghost: the host lists two people and shows one remote video, the rejoined participant's.
            await host.wait_until("document.querySelectorAll('#people li').length === 2", timeout=10)
            assert await _remote_tiles(host) == [guest_id]
            assert sorted(_room(node).connections) == sorted([host_id, guest_id])

            # The guest picks its second microphone, turns its camera off and the host mutes it; after another cut
            # all three still hold.
            second_mic = await guest.evaluate("document.querySelectorAll('#mic-select option')[1].value")
            await guest.fill("#mic-select", second_mic)
            await guest.wait_until("window.ketnoiMeeting.mic.label === 'Fake Audio Input 1'", timeout=10)
            await guest.click("#cam-btn")
            await host.click(f"#people button[data-action=mute][data-target='{guest_id}']")
            await guest.wait_until("window.ketnoiMeeting.mutedByHost === true", timeout=10)
            await _cut(node, guest_id)
            await _rejoined(guest, 2)
            assert await guest.evaluate("window.ketnoiMeeting.mic.label") == "Fake Audio Input 1"
            assert await guest.evaluate("document.getElementById('mic-select').value") == second_mic
            assert await guest.evaluate("window.ketnoiMeeting.pub.getSenders().some(s => s.track && s.track.label"
                                        " === 'Fake Audio Input 1')")  # fmt: skip
            assert await guest.evaluate("window.ketnoiMeeting.camOn") is False
            assert await guest.evaluate("window.ketnoiMeeting.cam.enabled") is False
            assert await guest.evaluate("window.ketnoiMeeting.mutedByHost") is True
            assert await guest.evaluate("document.getElementById('mic-btn').disabled") is True
            member = _room(node).room.members[guest_id]
            assert member.muted_by_host
            await host.wait_until(
                f"""window.ketnoiMeeting.roster.some(p => p.id === '{guest_id}' && p.camera === false
                    && p.muted_by_host === true)""",
                timeout=10,
            )  # fmt: skip
            # Its media connection (not the WebSocket) is closed at the node: the page rejoins as well. (The node
            # has no call that drops only the media path; its subscribe connection is reached directly.)
            await _room(node).connections[guest_id]._subscribe.close()  # type: ignore[union-attr]
            await _rejoined(guest, 3)
            await keeps_coming(guest, host_id)
            passes = await guest.evaluate("window.ketnoiMeeting.passes")
            await guest.evaluate("window.ketnoiMeeting.reconnectForMs = 3000")  # instead of 90 s
        # The node is gone for good: the page keeps asking for a while, then gives up and says so.
        closed = await guest.wait_until("document.getElementById('meeting').dataset.closed", timeout=30)
        assert closed == "gave_up" and await guest.evaluate("window.ketnoiMeeting.passes") > passes + 1
        assert "Không kết nối lại được" in await guest.text("#notice")
        assert not await guest.evaluate("document.getElementById('rejoin').hidden")


async def test_a_node_restart_is_rejoined_but_removal_and_a_closed_session_are_final(
    aiohttp_client: ServerClient, tmp_path: Path
) -> None:
    world = await open_session(aiohttp_client, tmp_path)
    port = free_port()
    async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
        pages = [browser.page, await browser.new_page(), await browser.new_page()]
        async with meeting_node(secret=world.secret, node_id=NODE_ID, port=port) as node:
            world.report(node, NODE_ID)
            ids = [await enter(page, url, name) for page, url, name in zip(pages, world.urls, "ABC", strict=True)]
            await hears_and_sees(pages[0], ids[1:])
        # The node is gone (its pages were told to rejoin): they keep trying until it is back on its port.
        for page in pages:
            await page.wait_until(f"{STATE} === 'reconnecting'", timeout=10)
        async with meeting_node(secret=world.secret, node_id=NODE_ID, port=port) as node:
            for page in pages:
                await _rejoined(page, 1)
            ids = [str(await page.evaluate("window.ketnoiMeeting.me")) for page in pages]
            for page, me in zip(pages, ids, strict=True):
                await hears_and_sees(page, [i for i in ids if i != me])

            # Removed: the page stops, says why, schedules no retry and asks for no pass.
            passes = await pages[2].evaluate("window.ketnoiMeeting.passes")
            await pages[0].click(f"#people button[data-action=remove][data-target='{ids[2]}']")
            await pages[2].wait_until("document.getElementById('meeting').dataset.closed === 'removed'", timeout=10)
            assert await pages[2].evaluate("window.ketnoiMeeting.retryTimer") is None
            assert "mời bạn ra" in await pages[2].text("#notice")
            assert await pages[2].evaluate("document.getElementById('rejoin').hidden")

            # The session is over at the controller: a cut page asks once, is refused, and stops.
            await world.clock.advance(65 * 60)  # past the end (within an hour and a minute), the link still valid
            before = await pages[1].evaluate("window.ketnoiMeeting.passes")
            await _cut(node, ids[1])
            closed = await pages[1].wait_until("document.getElementById('meeting').dataset.closed", timeout=20)
            assert closed == "over", await pages[1].text("#notice")
            assert await pages[1].evaluate("window.ketnoiMeeting.passes") == before + 1
            assert await pages[1].evaluate("window.ketnoiMeeting.retryTimer") is None
            assert "kết thúc" in await pages[1].text("#notice")
            assert await pages[2].evaluate("window.ketnoiMeeting.passes") == passes
            assert list(_room(node).connections) == [ids[0]]

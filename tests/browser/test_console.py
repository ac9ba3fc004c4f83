"""The web console in a real browser (Chromium), against `aivideo serve` with the `local` provider.

a) a person's way from a new story to a played final video, all through the UI;
b) the same files served from another origin, allowed by --cors-origin, and from a third one that
   is not (the browser withholds the answers: the console shows a network error and no data);
c) screenshots of the main screens in docs/screenshots/ (desktop 1280x800, and 375x800);
d) the jobs view's cancel and retry buttons.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from conftest import PageWatch, Server, StaticServer, screenshot, wait_until

RENDER_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def api_call(server: Server, token: str, method: str, path: str, body: dict | None = None) -> dict:
    """A direct API call (set-up only; the tests act through the UI)."""
    request = urllib.request.Request(
        f"{server.api}/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def video_time(page: Page, selector: str) -> float:
    return page.evaluate(f"document.querySelector({json.dumps(selector)}).currentTime")


def play_and_watch(page: Page, selector: str, at_least: float) -> float:
    """Plays a <video controls> as a person would: focus it and press Space (a click on the
    picture if that did not start it), then waits until its currentTime passes `at_least`."""
    video = page.locator(selector)
    expect(video).to_be_visible()
    page.wait_for_function(f"document.querySelector({json.dumps(selector)}).readyState >= 1", timeout=15_000)
    video.scroll_into_view_if_needed()
    video.focus()
    page.keyboard.press("Space")
    paused = f"document.querySelector({json.dumps(selector)}).paused"
    page.wait_for_timeout(300)
    if page.evaluate(paused):
        video.click()
    error = page.evaluate(f"(v => v.error && v.error.code)(document.querySelector({json.dumps(selector)}))")
    assert not error, f"the video could not play (MediaError {error})"
    assert not page.evaluate(paused), f"{selector} did not start playing"
    wait_until(lambda: video_time(page, selector) > at_least, 15, f"{selector} to play past {at_least} s")
    return video_time(page, selector)


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page scrolls sideways: {width}px wide in a {viewport}px viewport"


# ---- a) + c) ------------------------------------------------------------------------------------


def test_story_to_played_final_video(server: Server, new_page) -> None:
    page, watch = new_page(1280, 800)

    # `/` leads to the console, which asks for a sign-in.
    page.goto(server.origin + "/")
    assert page.url.startswith(server.origin + "/console/")
    expect(page.get_by_role("heading", name="Sign in", level=2)).to_be_visible()
    screenshot(page, "sign-in")

    # The local convenience: a token for a user name.
    page.get_by_label("User name").fill("alice")
    page.get_by_role("button", name="Get a local token").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    expect(page.get_by_text("No stories yet.")).to_be_visible()

    # Create a story; the API's field errors appear next to their fields first.
    main = page.get_by_role("main")
    main.get_by_role("link", name="New story").click()
    expect(page.get_by_role("heading", name="New story", level=2)).to_be_visible()
    page.get_by_label("Duration (seconds)").fill("2")
    page.get_by_role("button", name="Create story").click()
    title_error = page.locator('[data-error-for="title"]')
    expect(title_error).to_be_visible()
    expect(page.locator('[data-error-for="duration_seconds"]')).to_be_visible()
    expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("invalid")
    page.get_by_label("Title").fill("A fox in the snow")
    page.get_by_label("Description").fill("A red fox explores a quiet snowy forest at dawn.")
    page.get_by_label("Duration (seconds)").fill("6")
    page.get_by_label("Frames per second").fill("12")
    page.get_by_label("Resolution").fill("320x180")
    page.get_by_label("Style preset").fill("anime")
    page.get_by_role("button", name="Create story").click()
    expect(page.get_by_role("heading", name="A fox in the snow", level=2)).to_be_visible()
    expect(page.locator("#story-status")).to_contain_text("Draft")

    # Plan: 12 scenes on a timeline whose widths follow their durations.
    page.get_by_role("button", name="Plan scenes").click()
    segments = page.locator(".timeline .segment")
    expect(segments).to_have_count(12)
    expect(page.locator("#story-status")).to_contain_text("Planning")
    expect(page.locator("#timeline-summary")).to_contain_text("12 scenes, 6 s in all")
    widths = [box["width"] for box in (segments.nth(i).bounding_box() for i in range(12)) if box]
    assert len(widths) == 12
    total = sum(widths)
    # intro and outro about 10 % each; the 10 main scenes share the rest evenly
    assert 0.07 < widths[0] / total < 0.13 and 0.07 < widths[11] / total < 0.13, widths
    assert max(widths[1:11]) - min(widths[1:11]) < 0.02 * total, widths

    # New prompts for every scene; then pick the first one again on scene 1.
    page.get_by_role("button", name="Regenerate every scene\u2019s prompt").click()
    expect(page.get_by_role("status")).to_contain_text("12 new prompts")
    page.get_by_role("button", name="Edit scene 1", exact=True).click()
    editor = page.locator("section.editor")
    expect(editor.get_by_role("heading", name="Edit scene 1 (intro)")).to_be_visible()
    prompts = editor.locator("form.prompt")
    expect(prompts).to_have_count(2)
    expect(prompts.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    prompts.nth(0).get_by_role("button", name="Select this video prompt").click()
    expect(editor.locator("form.prompt").nth(0)).to_have_class(re.compile(r"\bselected\b"))
    expect(editor.locator("form.prompt.selected")).to_have_count(1)
    # Edit a prompt's text (PATCH with If-Match of the prompt's version).
    editor.get_by_label("Prompt text (video 1)").fill("The fox wakes under a pine; first light on the snow.")
    editor.locator("form.prompt").nth(0).get_by_role("button", name="Save text").click()
    expect(page.get_by_role("status")).to_contain_text("Prompt saved")
    expect(editor.get_by_label("Prompt text (video 1)")).to_have_value("The fox wakes under a pine; first light on the snow.")
    expect(page.locator(".scene-list [data-scene]").nth(0)).to_contain_text("The fox wakes under a pine")

    # Locked, the story refuses edits: the API's 409 `locked` shows in the alert.
    page.get_by_role("button", name="Lock", exact=True).click()
    expect(page.locator("#story-status")).to_contain_text("locked")
    editor.get_by_label("Scene title").fill("Dawn")
    editor.get_by_role("button", name="Save scene").click()
    expect(page.get_by_role("alert")).to_contain_text("409")
    expect(page.get_by_role("alert")).to_contain_text("locked")
    page.get_by_role("button", name="Unlock", exact=True).click()
    expect(page.locator("#story-status")).to_contain_text("unlocked")
    expect(page.get_by_role("alert")).to_be_hidden()

    # Edit scene 3: a title, and a slow video prompt (the local provider's `simulate`), selected,
    # so that the render's progress can be watched.
    page.get_by_role("button", name=re.compile(r"^Scene 3: main")).click()
    expect(editor.get_by_role("heading", name="Edit scene 3 (main)")).to_be_visible()
    editor.get_by_label("Scene title").fill("The fox listens")
    editor.get_by_role("button", name="Save scene").click()
    expect(page.get_by_role("status")).to_contain_text("Scene 3 saved")
    expect(page.locator('.scene-list [data-scene]').nth(2)).to_contain_text("The fox listens")
    new_prompt = editor.get_by_role("form", name="New prompt")
    new_prompt.get_by_label("Prompt text").fill("The fox stops and listens, ears up; snow falls.")
    new_prompt.get_by_label("Parameters (JSON, optional)").fill('{"simulate": "slow", "simulate_seconds": 3}')
    new_prompt.get_by_role("button", name="Add prompt").click()
    expect(editor.locator("form.prompt")).to_have_count(3)
    editor.locator("form.prompt").nth(2).get_by_role("button", name="Select this video prompt").click()
    expect(editor.locator("form.prompt").nth(2)).to_have_class(re.compile(r"\bselected\b"))
    screenshot(page, "story-timeline", top="#scenes-title")
    editor.get_by_role("button", name="Close").click()
    expect(editor).to_be_hidden()
    expect(page.get_by_role("button", name="Edit scene 3", exact=True)).to_be_focused()

    # PLANNING → PLANNED, with If-Match from the story as loaded: changed meanwhile (here by a
    # direct API call), the move is refused with 412 and the page reloads; the second try passes.
    token = server.token("alice")
    story_id = page.url.rsplit("/", 1)[1]
    api_call(server, token, "PATCH", f"stories/{story_id}/", {"description": "A red fox explores a quiet snowy forest at dawn, alone."})
    page.get_by_label("Move to").select_option("PLANNED")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("412")
    expect(page.get_by_role("alert")).to_contain_text("precondition_failed")
    expect(page.locator(".description")).to_contain_text("alone")
    page.get_by_label("Move to").select_option("PLANNED")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.locator("#story-status")).to_contain_text("Planned")
    expect(page.get_by_role("alert")).to_be_hidden()
    history = page.locator("ol.history")
    expect(history).to_contain_text("DRAFT → PLANNING")
    expect(history).to_contain_text("PLANNING → PLANNED")
    expect(page.locator("table.cost")).to_contain_text("local")

    # The preview: 13 jobs (12 scenes + compose) whose progress is polled every second.
    page.get_by_role("button", name="Start preview").click()
    jobs = page.locator("ul.job-list > li")
    expect(jobs).to_have_count(13)
    expect(page.locator("#story-status")).to_contain_text("Rendering preview")
    wait_until(
        lambda: page.locator('ul.job-list > li[data-status="succeeded"]').count() >= 1
        and page.locator('ul.job-list > li[data-status="waiting_provider"], ul.job-list > li[data-status="running"]').count() >= 1,
        30,
        "a render under way (some jobs done, some running)",
        interval=0.1,
    )
    expect(page.locator("#jobs-summary")).to_contain_text("updating every second")
    screenshot(page, "job-progress", top="#jobs-title")
    expect(page.locator("#story-status")).to_contain_text("Preview ready", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator('ul.job-list > li[data-status="succeeded"]')).to_have_count(13)
    expect(page.locator("#jobs-summary")).not_to_contain_text("updating")
    play_and_watch(page, "#preview-video", 0.3)

    # The final render, then play it.
    page.get_by_label("Quality").select_option("medium")
    page.get_by_role("button", name="Render final video").click()
    expect(page.locator("#story-status")).to_contain_text("Rendering final")
    expect(page.locator("#story-status")).to_contain_text("Completed", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("ul.job-list > li")).to_have_count(26)
    played = play_and_watch(page, "#final-video", 0.5)
    assert played > 0.5
    page.evaluate("document.querySelector('#final-video').pause()")
    screenshot(page, "final-video", top=".media")
    expect(history).to_contain_text("FINALIZING → COMPLETED")

    # The story list shows it, with its status; the providers list shows local.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Stories").click()
    item = page.locator(".story-list li").filter(has_text="A fox in the snow")
    expect(item).to_contain_text("Completed")
    page.get_by_label("Status").select_option("COMPLETED")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".story-list li")).to_have_count(1)
    page.get_by_label("Status").select_option("DRAFT")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No stories match these filters.")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Providers").click()
    expect(page.locator("table.providers")).to_contain_text("ffmpeg")
    expect(page.get_by_role("heading", name=re.compile(r"^Your spend in"))).to_be_visible()

    watch.assert_loopback_only()
    watch.assert_no_script_errors()
    # The error answers are those provoked above: 400 (no title), 409 (locked), 412 (stale version).
    assert [a.split(" ")[0] for a in watch.error_answers] == ["400", "409", "412"], watch.error_answers


def test_story_list_pages_and_screens_at_375px(server: Server, new_page) -> None:
    """Pagination by the API's next/previous links; the main screens at 375 px wide."""
    token = server.token("dora")
    for n in range(7):
        api_call(server, token, "POST", "stories/", {"title": f"Story {n}", "duration_seconds": 10, "fps": 6, "resolution": "256x144"})
    story = api_call(server, token, "POST", "stories/", {"title": "Small screen", "description": "A quick look on a phone.", "duration_seconds": 12, "fps": 6, "resolution": "256x144"})
    api_call(server, token, "POST", f"stories/{story['id']}/scenes/bulk/", {})

    page, watch = new_page(1280, 800)
    page.goto(server.origin + "/console/#/signin")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    page.get_by_label("Per page").select_option("5")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".story-list li")).to_have_count(5)
    screenshot(page, "story-list")
    page.get_by_role("link", name="Next page →").click()
    expect(page.locator(".story-list li")).to_have_count(3)
    expect(page.get_by_role("link", name="Next page →")).to_have_count(0)
    page.get_by_role("link", name="← Previous page").click()
    expect(page.locator(".story-list li")).to_have_count(5)

    # 375 px: no sideways scroll on the list, the story (timeline, editor) and the jobs.
    page.set_viewport_size({"width": 375, "height": 800})
    no_horizontal_scroll(page)
    page.get_by_role("link", name="Small screen").click()
    expect(page.locator(".timeline .segment")).to_have_count(12)
    no_horizontal_scroll(page)
    screenshot(page, "story-375")
    page.get_by_role("button", name="Edit scene 2", exact=True).click()
    expect(page.locator("section.editor")).to_be_visible()
    no_horizontal_scroll(page)
    # Keyboard only: Tab reaches the timeline's buttons, Enter opens a scene.
    page.locator(".timeline button").first.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Edit scene 2 (main)")).to_be_focused()
    for screen_hash in ("#/jobs", "#/providers", "#/new", "#/settings"):
        page.goto(server.origin + "/console/" + screen_hash)
        expect(page.get_by_role("heading", level=2)).to_be_visible()
        no_horizontal_scroll(page)
    watch.assert_loopback_only()
    watch.assert_no_script_errors()


# ---- d) jobs: cancel and retry ------------------------------------------------------------------


def test_jobs_view_cancel_and_retry(server: Server, new_page) -> None:
    token = server.token("erin")
    story = api_call(server, token, "POST", "stories/", {"title": "Cancel me", "duration_seconds": 5, "fps": 6, "resolution": "256x144"})
    plan = api_call(server, token, "POST", f"stories/{story['id']}/scenes/bulk/", {"scene_count": 3})
    slow_scene = plan["scenes"][1]["id"]
    prompt = api_call(server, token, "POST", "prompts/", {"scene": slow_scene, "prompt_type": "video", "text": "A long wait", "parameters": {"simulate": "slow", "simulate_seconds": 30}})
    api_call(server, token, "POST", f"prompts/{prompt['id']}/select/", {})
    api_call(server, token, "POST", f"stories/{story['id']}/transition/", {"to": "PLANNED"})
    api_call(server, token, "POST", f"stories/{story['id']}/generate_preview/", {"quality": "low"})

    page, watch = new_page(1280, 800)
    page.goto(server.origin + "/console/#/signin")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs", level=2)).to_be_visible()
    page.get_by_label("Kind").select_option("scene_preview")
    page.get_by_role("button", name="Apply filters").click()
    slow = page.locator("ul.job-list > li").filter(has=page.get_by_role("button", name=re.compile("^Cancel")))
    expect(slow).to_have_count(1, timeout=20_000)
    slow.get_by_role("button", name=re.compile("^Cancel")).click()
    cancelled = page.locator('ul.job-list > li[data-status="cancelled"]')
    expect(cancelled).to_have_count(1)
    expect(cancelled).to_contain_text("cancelled")
    cancelled.get_by_role("button", name=re.compile("^Retry")).click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    expect(page.locator('ul.job-list > li[data-status="cancelled"]')).to_have_count(0)
    watch.assert_loopback_only()
    watch.assert_no_script_errors()


# ---- e) idempotency keys ------------------------------------------------------------------------


def test_retry_after_network_error_reuses_the_idempotency_key(server: Server, new_page) -> None:
    token = server.token("gina")
    page, watch = new_page(1280, 800)
    keys: list[str | None] = []
    page.on("request", lambda r: r.method == "POST" and r.url == f"{server.api}/stories/" and keys.append(r.headers.get("idempotency-key")))
    page.goto(server.origin + "/console/#/signin")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    page.goto(server.origin + "/console/#/new")
    page.get_by_label("Title").fill("Sent twice, made once")

    # The first try is cut off before it reaches the API (the answer could have been lost too).
    page.route(f"{server.api}/stories/", lambda route: route.abort("connectionreset"))
    page.get_by_role("button", name="Create story").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Network error")
    page.unroute(f"{server.api}/stories/")
    alert.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Sent twice, made once", level=2)).to_be_visible()
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys

    # A new action gets a new key.
    page.goto(server.origin + "/console/#/new")
    page.get_by_label("Title").fill("Another one")
    page.get_by_role("button", name="Create story").click()
    expect(page.get_by_role("heading", name="Another one", level=2)).to_be_visible()
    assert len(keys) == 3 and keys[2] and keys[2] != keys[0], keys
    titles = [s["title"] for s in api_call(server, token, "GET", "stories/")["results"]]
    assert sorted(titles) == ["Another one", "Sent twice, made once"], titles
    watch.assert_loopback_only()
    watch.assert_no_script_errors()


def test_a_token_is_never_sent_to_an_api_a_link_names(server: Server, new_page) -> None:
    """Signed in, then a link in the same tab names another API (`?api=`): the token stays with the
    API it was given for, and the console asks to sign in there instead."""
    token = server.token("hana")
    page, watch = new_page(1280, 800)
    page.goto(server.origin + "/console/#/signin")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    # Another API on loopback that nobody answers: only where the token would go matters.
    elsewhere = "http://127.0.0.1:9/api/ai-video"
    sent: list[str] = []
    page.on("request", lambda r: r.url.startswith("http://127.0.0.1:9/") and sent.append(r.headers.get("authorization") or ""))
    page.goto(server.origin + "/console/?api=" + elsewhere + "#/stories")
    expect(page.get_by_label("Bearer token")).to_be_visible()
    assert all(not h for h in sent), sent
    # Back on its own API, the token is there again.
    page.goto(server.origin + "/console/#/stories")
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    watch.assert_no_script_errors()


# ---- b) cross-origin ----------------------------------------------------------------------------


@pytest.fixture()
def cross_origin():
    allowed = StaticServer()
    other = StaticServer()
    api = Server(cors_origins=[allowed.origin])
    yield allowed, other, api
    api.stop()
    allowed.stop()
    other.stop()


def test_cross_origin_console(cross_origin, new_page) -> None:
    allowed, other, api = cross_origin
    token = api.token("frank")

    # The allowed origin: sign in with the local token form (POST {API origin}/console/token),
    # list and create stories.
    page, watch = new_page(1280, 800)
    page.goto(f"{allowed.origin}/index.html?api={api.api}")
    expect(page.get_by_role("heading", name="Sign in", level=2)).to_be_visible()
    expect(page.locator("#api-base")).to_have_text(api.api)
    page.get_by_label("User name").fill("frank")
    page.get_by_role("button", name="Get a local token").click()
    expect(page.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    page.get_by_role("main").get_by_role("link", name="New story").click()
    page.get_by_label("Title").fill("Made across origins")
    page.get_by_label("Duration (seconds)").fill("5")
    page.get_by_role("button", name="Create story").click()
    expect(page.get_by_role("heading", name="Made across origins", level=2)).to_be_visible()
    # The plan call and its ETag/If-Match round trip work cross-origin too.
    page.get_by_role("button", name="Plan scenes").click()
    expect(page.locator(".timeline .segment")).to_have_count(12)
    page.get_by_label("Move to").select_option("PLANNED")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.locator("#story-status")).to_contain_text("Planned")
    # The whole flow from the other origin: preview (POSTs with Idempotency-Key, the jobs polled),
    # played; the final, played.
    page.get_by_role("button", name="Start preview").click()
    expect(page.locator("#story-status")).to_contain_text("Preview ready", timeout=RENDER_TIMEOUT_MS)
    play_and_watch(page, "#preview-video", 0.3)
    page.get_by_role("button", name="Render final video").click()
    expect(page.locator("#story-status")).to_contain_text("Completed", timeout=RENDER_TIMEOUT_MS)
    assert play_and_watch(page, "#final-video", 0.5) > 0.5
    page.evaluate("document.querySelector('#final-video').pause()")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Stories").click()
    expect(page.locator(".story-list li")).to_have_count(1)
    expect(page.locator(".story-list li")).to_contain_text("Made across origins")
    assert any(u.startswith(api.api) for u in watch.requests)
    assert not watch.failed, watch.failed
    watch.assert_loopback_only()
    watch.assert_no_script_errors()

    # Served elsewhere without ?api=, the console calls its own origin, where no local tokens are.
    page3, _ = new_page(1280, 800)
    page3.goto(f"{allowed.origin}/index.html")
    expect(page3.locator("#api-base")).to_have_text(f"{allowed.origin}/api/ai-video")
    page3.get_by_label("User name").fill("frank")
    page3.get_by_role("button", name="Get a local token").click()
    expect(page3.get_by_role("alert")).to_contain_text("Local tokens are not available")

    # A third origin, not allowed: the browser keeps every answer from the page.
    page2, watch2 = new_page(1280, 800)
    page2.goto(f"{other.origin}/index.html?api={api.api}")
    page2.get_by_label("Bearer token").fill(token)
    page2.get_by_role("button", name="Sign in").click()
    alert = page2.get_by_role("alert")
    expect(alert).to_contain_text("Network error")
    expect(alert).to_contain_text("CORS")
    expect(page2.get_by_role("heading", name="Sign in", level=2)).to_be_visible()
    expect(page2.locator(".story-list")).to_have_count(0)
    # The local token form fails the same way.
    page2.get_by_label("User name").fill("frank")
    page2.get_by_role("button", name="Get a local token").click()
    expect(alert).to_contain_text("Network error")
    # Even with a token in place (stored for that API), the list shows nothing from the API.
    page2.evaluate(
        """([t, base]) => {
            sessionStorage.setItem('aivideo.console.token', t);
            sessionStorage.setItem('aivideo.console.tokenBase', base);
            history.replaceState(null, '', location.pathname + location.search + '#/stories');
        }""",
        [token, api.api.rstrip("/")],
    )
    page2.reload()
    expect(page2.get_by_role("heading", name="Stories", level=2)).to_be_visible()
    expect(page2.get_by_role("alert")).to_contain_text("Network error")
    expect(page2.get_by_text("No stories to show.")).to_be_visible()
    expect(page2.locator(".story-list")).to_have_count(0)
    expect(page2.get_by_text("Made across origins")).to_have_count(0)
    assert any("CORS policy" in m for m in watch2.console), watch2.console
    assert any(u.startswith(api.api) for u in (f.split(" ")[1] for f in watch2.failed)), watch2.failed
    watch2.assert_loopback_only()
    watch2.assert_no_script_errors()

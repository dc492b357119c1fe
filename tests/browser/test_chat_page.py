"""The chat page, end to end in Chromium: sign in, generate and watch it sharpen, edit,
branch, reload mid-render, the waiting states, the gallery."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.conftest import Console, WebStack, shot

NewPage = Callable[[], Page]
CIRCLE = "a large red circle in the center, on a white background"


def signed_in(new_page: NewPage, web_stack: WebStack, key: str | None = None) -> Page:
    page = new_page()
    page.goto(f"/#key={key or web_stack.new_key()}")
    expect(page.get_by_role("button", name="New conversation")).to_be_visible()
    return page


def image(page: Page, index: int) -> Locator:
    return page.locator(f'li.turn[data-index="{index}"] img')


def understood(page: Page, index: int) -> Locator:
    """The caption under a turn's image: what the model understood its prompt as."""
    return page.locator(f'li.turn[data-index="{index}"] .understood')


def send(page: Page, text: str) -> None:
    prompt = page.locator("#composer-prompt")
    prompt.fill(text)
    prompt.press("Enter")


def conversation(web_stack: WebStack, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    (only,) = httpx.get(f"{web_stack.url}/v1/conversations", headers=headers).json()["data"]
    url = f"{web_stack.url}/v1/conversations/{only['id']}"
    found: dict[str, Any] = httpx.get(url, headers=headers).json()
    return found


def test_sign_in_with_the_form_and_with_the_link(
    new_page: NewPage, web_stack: WebStack, console: Console
) -> None:
    console.allow(r"status of 401")  # the wrong key, on purpose
    key = web_stack.new_key()
    page = new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    shot(page, "sign-in")

    page.get_by_label("API key").fill("dg-not-a-key")
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("That key was not accepted")

    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("button", name="New conversation")).to_be_visible()
    page.reload()  # remembered in localStorage
    expect(page.get_by_role("button", name="New conversation")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('daguerre.key')") is None

    # The link `daguerre up` prints: the page takes the key and drops the fragment.
    linked = new_page()
    linked.goto(f"/#key={key}")
    expect(linked.get_by_role("button", name="New conversation")).to_be_visible()
    expect(linked).to_have_url(f"{web_stack.url}/")
    assert linked.evaluate("localStorage.getItem('daguerre.key')") == key


def test_generate_watch_it_sharpen_edit_branch_rename_and_gallery(
    new_page: NewPage, web_stack: WebStack
) -> None:
    key = web_stack.new_key()
    page = signed_in(new_page, web_stack, key)
    expect(page.get_by_label("Describe an image")).to_be_focused()

    send(page, CIRCLE)
    first = image(page, 1)
    expect(first).to_have_attribute("data-state", "partial")  # a preview before the image
    expect(understood(page, 1)).to_be_hidden()  # said only with the finished image
    status = page.locator('li.turn[data-index="1"] .turn-status')
    expect(status).to_contain_text("Rendering")
    with contextlib.suppress(AssertionError):  # for the screenshot: a later step shows more
        expect(status).to_contain_text(re.compile(r"step [5-7] of"), timeout=5_000)
    shot(page, "rendering")
    expect(first).to_have_attribute("data-state", "final")
    assert int(first.get_attribute("data-previews") or 0) >= 1
    # The model's reading of the prompt, under the image (the built-in model gives one).
    expect(understood(page, 1)).to_be_visible()
    expect(understood(page, 1)).to_have_text(re.compile(r"^Understood as: \S"))
    expect(page.get_by_label("Describe a change to the latest image")).to_be_focused()

    # A follow-up edits the latest image.
    send(page, "make the circle green")
    expect(page.locator('li.turn[data-index="2"] .badge')).to_have_text("edit of #1")
    expect(image(page, 2)).to_have_attribute("data-state", "final")
    expect(understood(page, 2)).to_have_text(re.compile(r"^Understood as: \S"))

    # A branch edits an earlier one.
    page.get_by_role("button", name="Branch from image 1").click()
    expect(page.get_by_text("Branching from image #1")).to_be_visible()
    expect(page.get_by_label("Describe a change to image #1")).to_be_focused()
    send(page, "make the circle blue")
    expect(page.locator('li.turn[data-index="3"] .badge')).to_have_text("edit of #1")
    expect(image(page, 3)).to_have_attribute("data-state", "final")
    expect(page.get_by_text("Branching from image #1")).to_be_hidden()
    turns = conversation(web_stack, key)["turns"]
    assert [(t["mode"], t["parent_turn"]) for t in turns] == [
        ("new", None),
        ("edit", 1),
        ("edit", 1),
    ]
    assert all(t["job"]["status"] == "succeeded" for t in turns)
    # What the page shows is what the API says, for each turn.
    for index, t in enumerate(turns, 1):
        assert t["image"]["revised_prompt"], t
        expect(understood(page, index)).to_have_text(
            f"Understood as: {t['image']['revised_prompt']}"
        )

    # Rename, with the keyboard.
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Conversation title").fill("Circles")
    page.get_by_label("Conversation title").press("Enter")
    expect(page.get_by_role("heading", name="Circles")).to_be_visible()
    expect(page.locator(".conversation-link[aria-current=page]")).to_contain_text("Circles")
    expect(page.locator(".conversation-link[aria-current=page]")).to_contain_text("3 images")
    page.set_viewport_size({"width": 1200, "height": 1240})  # all three turns in the picture
    shot(page, "conversation")
    page.set_viewport_size({"width": 1200, "height": 820})

    # Copy a prompt, download an image.
    turn1 = page.locator('li.turn[data-index="1"]')
    turn1.get_by_role("button", name="Copy prompt").click()
    expect(page.get_by_role("status").filter(has_text="Prompt copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == CIRCLE
    with page.expect_download() as download:
        turn1.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename.endswith("-1.png")
    assert download.value.failure() is None

    # The gallery holds the account's three images, and leads back to the conversation.
    asked: list[str] = []  # the API requests the gallery makes (its image files aside)
    page.on("request", lambda request: asked.append(urlsplit(request.url).path))
    page.get_by_role("button", name="Gallery").click()
    expect(page.locator(".gallery-item img")).to_have_count(3)
    for img in page.locator(".gallery-item img").all():
        expect(img).to_have_js_property("complete", True)
    # One list request, not one per conversation (GET /v1/images, newest first).
    api_calls = [p for p in asked if p.startswith("/v1/") and "/files/" not in p]
    assert api_calls == ["/v1/images"], asked
    prompts = page.locator(".gallery-item figcaption").all_text_contents()
    assert prompts == ["make the circle blue", "make the circle green", CIRCLE]
    expect(page.get_by_role("button", name="More images")).to_be_hidden()
    shot(page, "gallery")
    page.get_by_role("button", name="Open “Circles”").first.click()
    expect(page.get_by_role("heading", name="Circles")).to_be_visible()
    expect(image(page, 3)).to_have_attribute("data-state", "final")


def test_reload_mid_render_resumes_and_a_closed_tab_loses_nothing(
    new_page: NewPage, web_stack: WebStack
) -> None:
    page = signed_in(new_page, web_stack)
    send(page, CIRCLE)
    expect(image(page, 1)).to_have_attribute("data-state", "partial")
    page.reload()
    expect(image(page, 1)).to_have_attribute("data-state", "final")

    send(page, "make the circle green")
    expect(image(page, 2)).to_have_attribute("data-state", "partial")
    page.close()  # mid-render
    back = new_page()  # same browser profile: the key and the conversation are remembered
    back.goto("/")
    expect(back.locator("li.turn")).to_have_count(2)
    # A finished turn's caption comes with the conversation itself, as the page loads.
    expect(understood(back, 1)).to_have_text(re.compile(r"^Understood as: \S"))
    expect(image(back, 2)).to_have_attribute("data-state", "final")


def _fake_events(job: dict[str, Any]) -> str:
    return f"event: state\ndata: {json.dumps(job)}\n\n"


def test_queued_and_deferred_in_plain_words_then_the_image_arrives(
    new_page: NewPage, web_stack: WebStack
) -> None:
    """The stack is idle, so its queue is simulated: the first connections to the job's
    events answer a queued, a deferred, then a paused job (one that paused for paid
    work); then the real stream delivers the image
    (the page reconnects by itself, no reload)."""
    fake: dict[str, Any] = {"status": "queued"}

    def events(route: Route) -> None:
        if fake["status"] == "real":
            route.continue_()
            return
        paused = fake["status"] == "paused"  # queued again after yielding its slot
        queued = fake["status"] == "queued" or paused
        job = {
            "id": "job_x",
            "object": "job",
            "status": "queued" if paused else fake["status"],
            "queue_position": 2 if queued else None,
            "estimated_wait_s": 4.2 if queued else None,
            "step": 3 if paused else 0,
            "total_steps": 8 if paused else None,
            "preemptions": 1 if paused else 0,
            "images": [],
        }
        route.fulfill(status=200, content_type="text/event-stream", body=_fake_events(job))

    page = signed_in(new_page, web_stack)
    page.route("**/v1/jobs/*/events", events)
    send(page, CIRCLE)
    status = page.locator('li.turn[data-index="1"] .turn-status')
    expect(status).to_have_text("In the queue: 2 ahead of you, about 4 s to wait.")
    shot(page, "queued")
    fake["status"] = "deferred"
    expect(status).to_contain_text("Deferred: we will finish this when capacity frees.")
    shot(page, "deferred")
    fake["status"] = "paused"
    expect(status).to_have_text(
        "Paused at step 3 of 8. In the queue: 2 ahead of you, about 4 s to wait."
    )
    fake["status"] = "real"
    expect(image(page, 1)).to_have_attribute("data-state", "final")
    expect(status).to_be_hidden()


def test_rate_limited_and_not_on_plan(
    new_page: NewPage, web_stack: WebStack, console: Console
) -> None:
    """A 429 with Retry-After and a 403, as the gateway's gates answer them (simulated
    here with page.route, so the test does not depend on the configured limits)."""
    console.allow(r"status of 429")
    console.allow(r"status of 403")
    answer: dict[str, Any] = {}

    def turns(route: Route) -> None:
        route.fulfill(
            status=answer["status"],
            headers={"Retry-After": "3"} if answer["status"] == 429 else {},
            content_type="application/json",
            body=json.dumps({"error": answer["error"]}),
        )

    page = signed_in(new_page, web_stack)
    page.route("**/v1/conversations/*/turns", turns)
    answer.update(
        status=429,
        error={
            "message": "Rate limit reached for images per window (0/minute) on plan free.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    )
    send(page, CIRCLE)
    notice = page.locator("#notice")
    expect(notice).to_have_text(
        "Rate limited: you have reached your plan's limit for now. You can try again in 3 s."
    )
    send_button = page.locator("#send")
    expect(send_button).to_be_disabled()
    expect(send_button).to_contain_text("Wait")
    expect(page.locator("#composer-prompt")).to_have_value(CIRCLE)  # nothing typed is lost
    shot(page, "rate-limited")
    expect(send_button).to_be_enabled(timeout=10_000)
    expect(send_button).to_have_text("Send")
    expect(notice).to_have_text("You can send again.")

    answer.update(
        status=403,
        error={
            "message": "Image generation is not yet available on your plan (free).",
            "type": "invalid_request_error",
            "param": None,
            "code": "feature_not_available",
        },
    )
    page.locator("#composer-prompt").press("Enter")
    expect(notice).to_contain_text("Not available on your plan: Image generation is not yet")
    shot(page, "not-on-plan")


def test_rate_limited_for_real_when_the_plan_allows_none(
    new_page: NewPage, web_stack: WebStack, console: Console
) -> None:
    """The operators' API sets the plus tier's request limit to zero: the gateway's own
    429 with its Retry-After reaches the page."""
    console.allow(r"status of 429")
    admin = {"Authorization": f"Bearer {web_stack.new_key(tier='admin')}"}
    tier_url = f"{web_stack.url}/admin/tiers/plus"
    changed = httpx.patch(tier_url, json={"requests": "0/minute"}, headers=admin)
    assert changed.status_code == 200, changed.text
    try:
        page = signed_in(new_page, web_stack, web_stack.new_key(tier="plus"))
        send(page, CIRCLE)
        expect(page.locator("#notice")).to_contain_text(
            re.compile(
                r"^Rate limited: you have reached your plan's limit for now\. "
                r"You can try again in \d+ (s|min)\.$"
            )
        )
        expect(page.locator("#send")).to_be_disabled()
        expect(page.locator("#send")).to_contain_text("Wait")
    finally:
        httpx.delete(tier_url, headers=admin)


def test_not_on_plan_for_real_when_the_feature_is_for_pro_only(
    new_page: NewPage, web_stack: WebStack, console: Console
) -> None:
    """The operators' API rolls image generation out to the pro tier alone: a plus
    account sees the gateway's 403 in plain words."""
    console.allow(r"status of 403")
    admin = {"Authorization": f"Bearer {web_stack.new_key(tier='admin')}"}
    flag_url = f"{web_stack.url}/admin/features/generate"
    changed = httpx.patch(flag_url, json={"tiers": ["pro"]}, headers=admin)
    assert changed.status_code == 200, changed.text
    try:
        page = signed_in(new_page, web_stack, web_stack.new_key(tier="plus"))
        send(page, CIRCLE)
        expect(page.locator("#notice")).to_contain_text(
            "Not available on your plan: Image generation is not yet available on your plan"
        )
        expect(page.locator("#send")).to_be_enabled()
    finally:
        httpx.delete(flag_url, headers=admin)


def test_the_gallery_pages_through_the_images(new_page: NewPage, web_stack: WebStack) -> None:
    """The gallery asks for a page at a time and offers the next with "More images" (the
    page size is cut to 2 here, so that three images make two pages)."""
    key = web_stack.new_key()
    made = httpx.post(
        f"{web_stack.url}/v1/images/generations",
        json={"prompt": CIRCLE, "n": 3, "response_format": "url"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert made.status_code == 200, made.text
    asked: list[str] = []

    def pages_of_two(route: Route) -> None:
        url = urlsplit(route.request.url)
        query = {**parse_qs(url.query), "limit": ["2"]}
        asked.append(urlencode(query, doseq=True))
        route.continue_(url=url._replace(query=urlencode(query, doseq=True)).geturl())

    page = signed_in(new_page, web_stack, key)
    page.route(re.compile(r"/v1/images\?"), pages_of_two)
    page.get_by_role("button", name="Gallery").click()
    expect(page.locator(".gallery-item")).to_have_count(2)
    more = page.get_by_role("button", name="More images")
    more.click()
    expect(page.locator(".gallery-item")).to_have_count(3)
    expect(more).to_be_hidden()
    ids = page.locator(".gallery-item").evaluate_all("items => items.map(i => i.dataset.id)")
    assert len(set(ids)) == 3
    assert asked == ["limit=2", f"limit=2&after={ids[1]}"]
    # Images made through the API belong to no conversation: nothing to open.
    expect(page.locator(".gallery-item button")).to_have_count(0)

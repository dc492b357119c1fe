"""The operator page (/ops), end to end in Chromium against a real stack: sign in with
an admin key, see the pools, tiers and flags, lower the free tier's request limit
through the page (with its confirmation), see the change in the audit log, and the next
free request answered 429 because of it; give a flag a tier's own rollout share. The page
logs no console error."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WebStack, shot

NewPage = Callable[[], Page]


@pytest.fixture
def admin_key(web_stack: WebStack) -> Iterator[str]:
    """An admin-scoped key of its own account; the free tier is given back after."""
    account = web_stack.store.accounts.create_account("operator", "admin", "chat")
    key = web_stack.store.accounts.create_api_key(account.id)
    yield key
    httpx.delete(
        f"{web_stack.url}/admin/tiers/free", headers={"Authorization": f"Bearer {key}"}
    ).raise_for_status()


def submit(web_stack: WebStack, key: str) -> httpx.Response:
    body = {"prompt": "a small blue square on the left, on a white background"}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{web_stack.url}/v1/jobs", json=body, headers=headers, timeout=30)


def test_a_lower_free_limit_set_on_the_page_makes_the_next_free_request_a_429(
    new_page: NewPage, web_stack: WebStack, admin_key: str
) -> None:
    free_key = web_stack.new_key("free")
    before = submit(web_stack, free_key)
    assert before.status_code == 202, before.text  # the shipped 30/minute: room to spare
    assert before.headers["x-ratelimit-limit-requests"] == "30"

    page = new_page()
    page.set_viewport_size({"width": 1280, "height": 1000})  # the whole page, for the docs
    page.goto("/ops")
    page.get_by_label("Admin key").fill(admin_key)
    page.get_by_role("button", name="Sign in").click()
    free_row = page.locator('#tiers-table tr[data-tier="free"]')
    expect(free_row.locator('[data-field="requests"]')).to_have_text("30/minute")
    expect(page.locator('#pools-table tr[data-pool="chat"]')).to_contain_text("1 worker")
    expect(page.locator('#flags-table tr[data-flag="generate"]')).to_contain_text("100%")

    page.get_by_role("button", name="Change tier free").click()
    page.get_by_label("Requests").fill("1/minute")
    page.get_by_role("button", name="Review change").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Tier free: requests 30/minute → 1/minute")
    shot(page, "ops-confirm")
    assert submit(web_stack, free_key).status_code == 202  # nothing applied before "Apply"
    confirm.get_by_role("button", name="Apply").click()
    expect(confirm).to_be_hidden()

    expect(free_row.locator('[data-field="requests"]')).to_have_text("1/minute")
    latest = page.locator("#audit-table tbody tr").first
    expect(latest).to_contain_text("PATCH /admin/tiers/free")
    expect(latest).to_contain_text('{"requests":"1/minute"}')
    expect(latest).to_contain_text(web_stack.store.accounts.check_key(admin_key).account.id)

    # A changed limit starts a fresh window: one request, then the 429 the change made.
    assert submit(web_stack, free_key).status_code == 202
    refused = submit(web_stack, free_key)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "(1/minute)" in error["message"]
    expect(free_row.locator('[data-field="refused"]')).to_have_text("1")  # seen within seconds
    shot(page, "ops-page")


def test_a_flag_gets_a_tiers_own_share_through_the_page(
    new_page: NewPage, web_stack: WebStack, admin_key: str
) -> None:
    page = new_page()
    page.goto("/ops")
    page.get_by_label("Admin key").fill(admin_key)
    page.get_by_role("button", name="Sign in").click()
    row = page.locator('#flags-table tr[data-flag="edit"]')
    expect(row.locator('[data-field="percent"]')).to_have_text("100%")
    try:
        page.get_by_role("button", name="Change flag edit").click()
        page.get_by_label("Per-tier percent").fill("plus=10")
        page.get_by_role("button", name="Review change").click()
        confirm = page.locator("#confirm-dialog")
        expect(confirm).to_contain_text("Flag edit: per-tier percent (none) → plus=10")
        confirm.get_by_role("button", name="Apply").click()
        expect(row.locator('[data-field="percent"]')).to_have_text("100% (plus 10%)")
        latest = page.locator("#audit-table tbody tr").first
        expect(latest).to_contain_text('{"tier_percent":{"plus":10}}')
        # A malformed share stays in the dialog with what to write.
        page.get_by_role("button", name="Change flag edit").click()
        page.get_by_label("Per-tier percent").fill("plus:10")
        page.get_by_role("button", name="Review change").click()
        expect(page.locator("#edit-error")).to_contain_text("write tier=percent")
    finally:
        httpx.delete(
            f"{web_stack.url}/admin/features/edit", headers={"Authorization": f"Bearer {admin_key}"}
        ).raise_for_status()

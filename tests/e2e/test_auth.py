"""Signing in with an API key or an Open WebUI token, keeping the session, signing out, 401s."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Api, LiveApp, jwt, new_page, sign_in


def test_sign_in_with_api_key_survives_reload_and_sign_out_clears_it(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to flowhistory")).to_be_visible()
    shot("sign-in")
    sign_in(page, api.key)
    expect(page.locator("#who")).to_have_text("admin (admin)")
    expect(page.get_by_role("heading", name="Flows")).to_be_visible()
    expect(page.locator("#flows-table").get_by_role("link", name="support-bot")).to_be_visible()
    shot("flows")

    page.reload()
    expect(page.locator("#who")).to_have_text("admin (admin)")
    assert page.evaluate("localStorage.getItem('flowhistory.token')") == api.key

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to flowhistory")).to_be_visible()
    expect(page.locator("#signin-message")).to_have_text("You are signed out.")
    assert page.evaluate("localStorage.getItem('flowhistory.token')") is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to flowhistory")).to_be_visible()
    shot("signed-out")


def test_sign_in_with_open_webui_token_sees_only_readable_flows(
    page: Any, shot: Any, api: Api, seeded: dict
) -> None:
    sign_in(page, jwt("e2e-reader"))
    expect(page.locator("#who")).to_have_text("e2e-reader (user)")
    # support-bot is private to admin: a new user sees no flow and is told so
    expect(page.get_by_text("No flows yet")).to_be_visible()
    expect(page.get_by_role("link", name="SQL")).to_be_hidden()
    shot("reader-no-flows")


def test_a_refused_key_stays_on_the_sign_in_screen_with_a_message(
    page: Any, shot: Any, live: LiveApp
) -> None:
    page.goto("/")
    page.get_by_label("API key or Open WebUI token").fill("sk-" + "0" * 32)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("This key or token was not accepted.")
    assert page.evaluate("localStorage.getItem('flowhistory.token')") is None
    shot("refused")


def test_a_401_during_the_session_brings_back_the_sign_in_screen(
    browser: Any, live: LiveApp, api: Api, seeded: dict
) -> None:
    created = api.ok(api.http.post("/api/v1/keys", json={"user_id": "admin", "name": "e2e-revoked"}))
    page = new_page(browser, live)
    try:
        sign_in(page, created["key"])
        expect(page.locator("#flows-table")).to_be_visible()
        api.ok(api.http.delete(f"/api/v1/keys/{created['id']}"))
        page.get_by_role("link", name="support-bot").click()
        expect(page.get_by_role("heading", name="Sign in to flowhistory")).to_be_visible()
        expect(page.locator("#signin-message")).to_contain_text("Sign in again")
        assert page.evaluate("localStorage.getItem('flowhistory.token')") is None
        # a mistyped key then: its refusal alone, not under "Signed out: ..." as well
        page.fill("#token", "sk-not-a-key")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_have_text("This key or token was not accepted.")
        expect(page.locator("#signin-message")).to_have_count(0)
    finally:
        page.context.close()

"""What the login dialog checks before anything is sent (no display needed)."""

from __future__ import annotations

import pytest

from app.ui.dialogs import credentials_problem, is_valid_email


@pytest.mark.parametrize(
    "email",
    [
        "ada@example.com",
        "demo@telex.local",
        "first.last+tag@sub.example.co.uk",
        "zoë@exämple.com",
        "x@a-b.io",
        "o'brien@example.ie",
    ],
)
def test_valid_emails(email: str) -> None:
    assert is_valid_email(email)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada@exa mple.com",
        "ada example@example.com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@example..com",
        "ada@example.c",
        "ada@example.123",
        "ada@.example.com",
        "a" * 250 + "@example.com",
    ],
)
def test_invalid_emails(email: str) -> None:
    assert not is_valid_email(email)


def test_problems_in_the_order_the_user_fixes_them() -> None:
    assert credentials_problem("", "") == "Enter your email address."
    assert credentials_problem("ada", "pw") == "“ada” is not a valid email address."
    assert credentials_problem("ada@example.com", "") == "Enter your password."
    assert credentials_problem("ada@example.com", " ") is None  # spaces are a valid password

"""Helpers of the account tests: read a received mail, pull the token out of its link, sign in."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

LINK = re.compile(r"https?://\S+\?token=[A-Za-z0-9_\-]+")


def text_body(message) -> str:  # noqa: ANN001 - email.message.EmailMessage
    part = message.get_body(preferencelist=("plain",))
    return part.get_content()


def html_body(message) -> str:  # noqa: ANN001
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(message) -> str:  # noqa: ANN001
    """The one link with a token in the mail's text part (and the same link is in the HTML part)."""
    links = LINK.findall(text_body(message))
    assert len(set(links)) == 1, links
    assert links[0] in html_body(message)
    return links[0]


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


def login(client, email: str, password: str):  # noqa: ANN001
    return client.post("/api/v1/auth/login", data={"username": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

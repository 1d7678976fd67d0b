"""The demo cloud's answers: one HTTP response as data, and the bodies the live service answers with."""

from __future__ import annotations

from dataclasses import dataclass

from . import payloads

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
# How the live service answers a request with an expired session (ENLIGHTEN_API.md §1).
EXPIRY_FORMS = ("401", "403", "302", "html")

LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Enlighten | Sign in</title></head><body>"
    b'<form action="/login/login" method="post"><input name="user[email]"><input name="user[password]"'
    b' type="password"><button>Sign in</button></form></body></html>\n'
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def is_json_ok(self) -> bool:
        return self.status == 200 and self.content_type == JSON_TYPE


def json_answer(
    status: int, body: payloads.JSON | str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    text = body if isinstance(body, str) else payloads.to_json(body)
    return Response(status, text.encode(), JSON_TYPE, headers)


def html_answer(status: int, title: str) -> Response:
    """The kind of page a load balancer or proxy answers with: HTML, whatever the client asked for."""
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    return Response(status, page.encode(), HTML_TYPE)


def not_authorized() -> Response:
    return json_answer(401, {"message": "Not authorized"})


def expired_answer(form: str, base_url: str) -> Response:
    if form == "403":
        return json_answer(403, {"message": "Forbidden"})
    if form == "302":
        return Response(302, b"", HTML_TYPE, (("Location", f"{base_url}/login"),))
    if form == "html":
        return Response(200, LOGIN_PAGE, HTML_TYPE)
    return not_authorized()

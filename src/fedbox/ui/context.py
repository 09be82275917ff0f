"""What every page handler gets: the settings, the store (if any) and a renderer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from rich.errors import MarkupError
from rich.text import Text
from starlette.responses import Response

from fedbox.store import Store
from fedbox.ui.security import CSRF_FIELD, csrf_value
from fedbox.ui.settings import UiSettings

__all__ = ["Ui", "UiContext", "render", "ui_context"]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass(slots=True)
class UiContext:
    """Held by the app for its lifetime (``app.state.ui``); the store is opened at start
    and closed at shutdown."""

    settings: UiSettings
    store: Store | None = None


def ui_context(request: Request) -> UiContext:
    """A FastAPI dependency: ``ui: UiContext = Depends(ui_context)``."""
    ui: UiContext = request.app.state.ui
    return ui


Ui = Annotated[UiContext, Depends(ui_context)]
"""A handler's parameter ``ui: Ui`` is the app's :class:`UiContext`."""


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    """A page with what every template uses: who we are, the CSRF value, the active page."""
    ui = ui_context(request)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "email": ui.settings.email,
            "csrf_field": CSRF_FIELD,
            "csrf": csrf_value(ui.settings.token),
            **values,
        },
        status_code=status_code,
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rich(value: str) -> Markup:
    """Rich markup (as ``fedbox inspect`` rows carry it) as HTML: each styled stretch a
    ``<span class="tone-STYLE">``, everything else escaped."""
    try:
        text = Text.from_markup(value)
    except MarkupError:
        return escape(value)
    plain, out, at = text.plain, [], 0
    for span in sorted(text.spans, key=lambda s: s.start):
        if span.start < at:
            continue
        tone = "".join(c for c in str(span.style).split(" ")[0] if c.isalnum())
        out += [escape(plain[at : span.start]), Markup(f'<span class="tone-{tone}">')]
        out += [escape(plain[span.start : span.end]), Markup("</span>")]
        at = span.end
    out.append(escape(plain[at:]))
    return Markup("").join(out)


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["rich"] = _rich

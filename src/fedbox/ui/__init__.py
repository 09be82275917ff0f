"""Layer 9: ``fedbox ui``, a local web dashboard for one identity (issue 19).

Server-side pages (Jinja2 templates on FastAPI) over the state dir and store of one
identity: its audit trail, peers and their keys, rds jobs, and FL runs with live plots.
Every asset ships in ``static/`` (Chart.js vendored); access is Jupyter's model: a token
in the printed URL, then a cookie, and a CSRF value on every POST.
"""

from fedbox.ui.app import create_app
from fedbox.ui.settings import DEFAULT_HOST, DEFAULT_PORT, UiSettings

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "UiSettings", "create_app"]

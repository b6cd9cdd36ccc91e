"""Hooks the local dev server (devtools/devserver.py, `make run`) calls at start-up, if present."""

from __future__ import annotations

import os
import secrets

from chalicelib.process import runtime


def on_devserver_start() -> list[str]:
    """Make sure the survey dashboard has an admin token and say what it is; leave writes and the load generator
    open unless told otherwise (WRITE_ACCESS=token gets a write token, said too); set a cursor secret.

    A token already in the environment (ADMIN_TOKEN=... or WRITE_TOKEN=... make run) is kept, so it can stay the
    same across restarts; otherwise a fresh one is generated for this run.
    """
    # Page cursors are signed with CURSOR_SECRET; one set in the environment keeps them valid across restarts.
    if not os.environ.get("CURSOR_SECRET"):
        os.environ["CURSOR_SECRET"] = secrets.token_urlsafe(32)
    token = os.environ.get("ADMIN_TOKEN")
    if not token:
        token = os.environ["ADMIN_TOKEN"] = secrets.token_urlsafe(32)
    # Locally the load generator stays open to anyone, as the hit counter's brief asks; a deployed stage
    # needs the admin token for it, or switches it off.
    os.environ.setdefault("LOAD_TEST_ACCESS", "open")
    # Locally anyone may write, as the seeds' services let them; WRITE_ACCESS=token make run tries a deployed
    # stage's rule, with a write token of its own.
    os.environ.setdefault("WRITE_ACCESS", "open")
    lines = [f"Admin token: {token}"]
    if os.environ["WRITE_ACCESS"] == "token":
        write_token = os.environ.get("WRITE_TOKEN")
        if not write_token:
            write_token = os.environ["WRITE_TOKEN"] = secrets.token_urlsafe(32)
        lines.append(f"Write token: {write_token} (writes need Authorization: Bearer <token>)")
    origins = os.environ.get("CORS_ORIGINS", "").strip()
    if origins:
        lines.append(f"CORS: pages of {origins} may call the API from a browser")
    runtime.reset()
    port = os.environ.get("PORT", "8000")
    return [
        *lines,
        f"Survey: http://127.0.0.1:{port}/survey   Dashboard: http://127.0.0.1:{port}/dashboard (paste the token there)",
    ]

"""The UI application: ``create_app(settings)``, its routes, who may do what, and how a
page becomes HTML or JSON.

Every page is registered twice: ``/runs`` (HTML, or JSON when the request accepts only
JSON) and ``/api/runs`` (JSON). A handler runs in a worker thread (the SDK is
synchronous) and returns a :class:`~loopline.ui.render.Page`, or a response of its own
(a download, a redirect). Reading needs the role ``read``; promoting and rolling back
need ``admin``, checked here on the server whatever the page shows. Errors of the SDK
become HTTP statuses here: not found 404, a refused or conflicting move 409, bad input
400, an unavailable store 503.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loopline.serve.keys import role_allows
from loopline.ui import static
from loopline.ui.render import Page, dumps, environment, wants_json
from loopline.ui.sessions import LOGIN_COOKIE, SESSION_COOKIE, Identity, KeyCache, Signer

if TYPE_CHECKING:
    import jinja2
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from loopline.config import Settings
    from loopline.data import Datasets
    from loopline.registry import Registry
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

#: How long the list of run keys (the column chooser) is reused.
KEYS_TTL_S = 30.0
NAV = (
    ("/runs", "Runs"),
    ("/datasets", "Datasets"),
    ("/models", "Models"),
    ("/deployments", "Deployments"),
    ("/monitors", "Monitors"),
    ("/alarms", "Alarms"),
    ("/loop", "Loop"),
)
#: Scripts and styles only from the UI itself; plotly sets inline styles on its nodes.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)


@dataclass
class UI:
    """What every handler gets: the project's stores and settings, and the UI's state."""

    settings: Settings
    stores: Stores
    auth: bool
    signer: Signer
    env: jinja2.Environment
    keys: KeyCache | None = None
    _run_keys: dict[str | None, tuple[float, dict[str, list[str]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_keys(self, experiment: str | None) -> dict[str, list[str]]:
        """The param, metric and tag keys of the runs (for the column chooser), read at
        most every :data:`KEYS_TTL_S` seconds: on many runs that read takes a while."""
        now = time.monotonic()
        with self._lock:
            hit = self._run_keys.get(experiment)
        if hit is not None and hit[0] > now:
            return hit[1]
        keys = self.tracker.run_keys(experiment)
        with self._lock:
            if len(self._run_keys) > 256:
                self._run_keys.clear()
            self._run_keys[experiment] = (now + KEYS_TTL_S, keys)
        return keys

    @cached_property
    def tracker(self) -> Tracker:
        from loopline.tracking import Tracker

        return Tracker(self.stores)

    @cached_property
    def registry(self) -> Registry:
        from loopline.registry import Registry

        return Registry(self.stores)

    @cached_property
    def datasets(self) -> Datasets:
        from loopline.data import Datasets

        return Datasets(self.stores)


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    ui: UI
    who: Identity
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def query(self) -> Any:
        return self.request.query_params

    def arg(self, name: str) -> str:
        return str(self.request.path_params[name])

    @property
    def actor(self) -> str:
        """Who a change is recorded as, in the audit log and the alias history."""
        from loopline.store.db.events import current_actor

        if self.who.key_id is None:
            return f"{current_actor()} (ui)"[:128]
        return f"ui key {self.who.label}"[:128]


Handler = Callable[[Call], "Page | Response"]


def create_app(
    settings: Settings,
    stores: Stores | None = None,
    *,
    auth: bool | None = None,
    secret: bytes | None = None,
    session_hours: float = 12.0,
) -> Starlette:
    """The UI over a project. ``stores`` (opened from ``settings`` when None, and then
    closed with the app); ``auth`` (default ``[serve] auth``) requires a login with an API
    key; ``secret`` signs the session cookies (default: random for this process)."""
    from loopline.serve.keys import KeyStore
    from loopline.serve.settings import load_serve_settings
    from loopline.store.stores import Stores as StoresClass

    owned = stores is None
    opened = StoresClass.open(settings) if stores is None else stores
    enabled = load_serve_settings(settings).auth if auth is None else auth
    ui = UI(
        settings=settings,
        stores=opened,
        auth=enabled,
        signer=Signer(secret, max_age_s=session_hours * 3600),
        env=environment(),
        keys=KeyCache(KeyStore(opened.db)) if enabled else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                opened.close()

    app = Starlette(routes=_routes(ui), lifespan=lifespan)
    app.add_middleware(_SecurityHeaders)
    app.state.ui = ui
    return app


def _routes(ui: UI) -> list[BaseRoute]:
    from loopline.ui.pages import alarms, datasets, deployments, models, monitors, runs

    routes: list[BaseRoute] = [
        Route("/", _home, methods=["GET"]),
        Route("/login", _login_page(ui), methods=["GET"]),
        Route("/login", _login(ui), methods=["POST"]),
        Route("/logout", _endpoint(ui, _logout, need="read"), methods=["POST"]),
        Route("/static/{name}", static.static_file, methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
    ]
    for module in (runs, datasets, models, deployments, monitors, alarms):
        for path, handler, method, need in module.ROUTES:
            endpoint = _endpoint(ui, handler, need=need)
            routes.append(Route(path, endpoint, methods=[method]))
            routes.append(Route("/api" + path, endpoint, methods=[method]))
    return routes


# -- who is asking ----------------------------------------------------------------------------


def _identify(ui: UI, request: Request) -> tuple[Identity | None, str | None]:
    """The caller, and a new session cookie to set (when auth is off and there is none)."""
    session = ui.signer.read(request.cookies.get(SESSION_COOKIE))
    if not ui.auth:
        if session is None or session.key_id is not None:
            cookie, session = ui.signer.issue(None)
            return Identity(role="admin", session=session), cookie
        return Identity(role="admin", session=session), None
    assert ui.keys is not None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        key = ui.keys.by_secret(token.strip())
        if key is None:
            return None, None
        return Identity(key.role, key.key_id, key.name, bearer=True), None
    if session is None or session.key_id is None:
        return None, None
    key = ui.keys.by_id(session.key_id)
    if key is None:
        return None, None
    return Identity(key.role, key.key_id, key.name, session=session), None


def _endpoint(ui: UI, handler: Handler, *, need: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        as_json = wants_json(request.url.path, request.headers.get("accept", ""))
        who, cookie = await run_in_threadpool(_identify, ui, request)
        if who is None:
            if as_json:
                return _problem(401, "unauthorized", "Log in: send Authorization: Bearer <key>")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if not role_allows(who.role, need):
            message = f"This key's role is {who.role!r}; this needs {need!r}"
            return _error(ui, request, who, 403, "forbidden", message, as_json)
        form: dict[str, str] = {}
        if request.method == "POST":
            form = await _form(request)
            if not who.bearer and not ui.signer.check_csrf(who.session, form.get("csrf")):
                message = "The form's CSRF token is missing or wrong: reload the page and retry"
                return _error(ui, request, who, 403, "csrf", message, as_json)
        call = Call(request, ui, who, form)
        try:
            result = await run_in_threadpool(handler, call)
        except Exception as exc:
            status, kind = _status_of(exc)
            if status is None:
                raise
            return _error(ui, request, who, status, kind, str(exc), as_json, exc)
        response = result if isinstance(result, Response) else _respond(ui, call, result, as_json)
        if cookie is not None:
            _set_session(response, request, cookie, ui)
        return response

    return endpoint


#: The UI's forms are a few short fields.
MAX_FORM_BYTES = 64 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form body (the only kind the UI's forms send); the last
    value of a repeated field."""
    from urllib.parse import parse_qsl

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            break
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _status_of(exc: Exception) -> tuple[int | None, str]:
    from loopline.data.errors import DatasetNotFoundError
    from loopline.errors import LooplineError
    from loopline.loop.errors import RolloutActiveError, RolloutNotFoundError
    from loopline.registry.errors import (
        AliasNotFoundError,
        ConflictError,
        ModelNotFoundError,
        ModelVersionNotFoundError,
        PromotionRefusedError,
    )
    from loopline.store.errors import MetadataStoreError, StoreUnreachableError
    from loopline.tracking.errors import RunNotFoundError
    from loopline.ui.errors import PageNotFoundError

    missing = (
        RunNotFoundError,
        ModelNotFoundError,
        ModelVersionNotFoundError,
        AliasNotFoundError,
        DatasetNotFoundError,
        RolloutNotFoundError,
        PageNotFoundError,
    )
    if isinstance(exc, missing):
        return 404, "not_found"
    if isinstance(exc, PromotionRefusedError | ConflictError | RolloutActiveError):
        return 409, "conflict"
    if isinstance(exc, StoreUnreachableError | MetadataStoreError):
        return 503, "unavailable"
    if isinstance(exc, LooplineError):
        return 400, "bad_request"
    return None, ""


# -- responses --------------------------------------------------------------------------------


def _context(ui: UI, request: Request, who: Identity | None) -> dict[str, Any]:
    return {
        "nav": NAV,
        "path": request.url.path,
        "query_pairs": list(request.query_params.multi_items()),
        "auth": ui.auth,
        "who": who,
        "csrf": ui.signer.csrf_token(who.session) if who and who.session else "",
        "can_admin": who is not None and role_allows(who.role, "admin"),
        "plotly_url": f"/static/{static.PLOTLY}?v={static.version(static.PLOTLY)}",
        "css_url": f"/static/ui.css?v={static.version('ui.css')}",
        "js_url": f"/static/ui.js?v={static.version('ui.js')}",
        "project": ui.settings.project_dir.name,
    }


def _respond(ui: UI, call: Call, page: Page, as_json: bool) -> Response:
    if as_json:
        return Response(dumps(page.data), status_code=page.status, media_type="application/json")
    html = ui.env.get_template(page.template).render(
        d=page.data, x=page.extra, title=page.title, **_context(ui, call.request, call.who)
    )
    return HTMLResponse(html, status_code=page.status)


def _error(
    ui: UI,
    request: Request,
    who: Identity | None,
    status: int,
    kind: str,
    message: str,
    as_json: bool,
    exc: Exception | None = None,
) -> Response:
    detail: dict[str, Any] = {"error": kind, "status": status, "message": message}
    verdict = getattr(exc, "verdict", None)
    if verdict is not None:
        reasons = getattr(verdict, "reasons", None)
        detail["reasons"] = [str(r) for r in reasons or ()]
    if as_json:
        return Response(dumps(detail), status_code=status, media_type="application/json")
    html = ui.env.get_template("error.html").render(
        d=detail, x={}, title=f"{status} {kind.replace('_', ' ')}", **_context(ui, request, who)
    )
    return HTMLResponse(html, status_code=status)


def _problem(status: int, kind: str, message: str) -> Response:
    body = dumps({"error": kind, "status": status, "message": message})
    headers = {"www-authenticate": 'Bearer realm="loopline"'} if status == 401 else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _set_session(response: Response, request: Request, value: str, ui: UI) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(ui.signer.max_age_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class _SecurityHeaders:
    """Headers every response gets unless it set its own (an artifact shown in a frame
    sets a sandboxing policy of its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"referrer-policy", b"same-origin"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- the few routes of the app itself ---------------------------------------------------------


async def _home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=303)


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never ``//host`` or ``https://...``) to go to after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(ui: UI) -> Callable[[Request], Any]:
    async def page(request: Request) -> Response:
        if not ui.auth:
            return RedirectResponse("/", status_code=303)
        return _render_login(ui, request, "", 200)

    return page


def _render_login(ui: UI, request: Request, message: str, status: int) -> Response:
    import secrets

    nonce = secrets.token_urlsafe(16)
    html = ui.env.get_template("login.html").render(
        d={"message": message, "next": _safe_next(request.query_params.get("next"))},
        x={"login_token": ui.signer.login_token(nonce)},
        title="Log in",
        **_context(ui, request, None),
    )
    response = HTMLResponse(html, status_code=status)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _login(ui: UI) -> Callable[[Request], Any]:
    async def login(request: Request) -> Response:
        if not ui.auth:
            return RedirectResponse("/", status_code=303)
        form = await _form(request)
        if not ui.signer.check_login(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            return _render_login(ui, request, "The login form expired: try again", 403)
        key_text = form.get("key", "").strip()
        assert ui.keys is not None
        key = None
        if key_text:
            key = await run_in_threadpool(ui.keys.by_secret, key_text)
        if key is None:
            return _render_login(ui, request, "Unknown or revoked API key", 401)
        cookie, _ = ui.signer.issue(key.key_id)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        _set_session(response, request, cookie, ui)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    return login


def _logout(call: Call) -> Response:
    response = RedirectResponse("/login" if call.ui.auth else "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

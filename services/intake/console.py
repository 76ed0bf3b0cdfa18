"""The operator console, ``GET /console``: a page and its script, which read the API.

The console is a small HTML page and one script (``console.js``, next to this
module). The page itself is public and holds nothing: the script asks for an
API key (or takes it from the URL fragment, ``#key=…``, which browsers never
send to a server), keeps it in ``sessionStorage`` for that tab only, and calls
the API with it: ``GET /v1/incidents``, ``GET /v1/incidents/{id}`` and
``GET /v1/notices/{id}/dead-letters``, polling while the tab is open. The key
is never in a cookie or in a URL the server sees.

The Content-Security-Policy allows only this server's script (also pinned by
its hash through ``integrity``), requests to this server, and the one inline
style block by its hash.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from aiohttp import web

from alimi_intake import access

routes = web.RouteTableDef()

SCRIPT_PATH = "/console/static/console.js"
SCRIPT = (Path(__file__).with_name("console.js")).read_text(encoding="utf-8")
SCRIPT_INTEGRITY = "sha384-" + base64.b64encode(hashlib.sha384(SCRIPT.encode()).digest()).decode()

CSS = (
    ":root{color-scheme:light}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:#fff;color:#1b1b1b;"
    'font:1rem/1.5 system-ui,-apple-system,"Apple SD Gothic Neo","Malgun Gothic",'
    '"Noto Sans KR",sans-serif}'
    "header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}"
    "header{border-bottom:1px solid #c8c8c8}"
    "h1{font-size:1.4rem;margin:.75rem 0}"
    "h2{font-size:1.25rem;margin:1.25rem 0 .5rem}"
    "h3{font-size:1.05rem;margin:1.25rem 0 .25rem}"
    "a{color:#0b57d0}"
    "a:focus-visible,button:focus-visible,input:focus-visible"
    "{outline:3px solid #0b57d0;outline-offset:2px}"
    "[tabindex='-1']:focus{outline:none}"  # headings the script moves focus to
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}"
    "dt{font-weight:600}dd{margin:0}"
    "label{display:block;font-weight:600;margin:.5rem 0 .25rem}"
    "input{font:inherit;padding:.4rem;width:min(100%,32rem);border:1px solid #6b6b6b}"
    "button{font:inherit;padding:.4rem .9rem;margin:.5rem .5rem .5rem 0;cursor:pointer}"
    "table{border-collapse:collapse;margin:.25rem 0 1rem;min-width:50%}"
    "caption{text-align:left;font-weight:600;padding:.25rem 0}"
    "th,td{border:1px solid #c8c8c8;padding:.3rem .6rem;text-align:left}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".wrap{overflow-x:auto}"
    ".timer{font-size:1.2rem;font-weight:700;font-variant-numeric:tabular-nums}"
    ".overdue{color:#a50e0e}"
    ".note{color:#4a4a4a}"
    ".problem{border-left:.375rem solid #a50e0e;background:#fdeceb;padding:.5rem 1rem}"
    "svg{display:block;max-width:100%;height:auto;border:1px solid #c8c8c8}"
    "[hidden]{display:none!important}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    f"style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def render_shell() -> str:
    """The console page: headings, the key form and empty regions the script fills."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        "<title>Alimi console</title>\n"
        f"<style>{CSS}</style>\n"
        f'<script src="{SCRIPT_PATH}" integrity="{SCRIPT_INTEGRITY}" defer></script>\n'
        "</head>\n<body>\n"
        "<header><h1>Alimi console</h1></header>\n<main>\n"
        '<noscript><p class="problem">The console needs JavaScript.</p></noscript>\n'
        '<div id="message" role="status"></div>\n'
        '<section id="key-section" aria-labelledby="key-h" hidden>'
        '<h2 id="key-h">API key</h2>'
        '<form id="key-form"><label for="key-input">API key with the incidents:read scope</label>'
        '<input id="key-input" name="key" type="password" autocomplete="off" spellcheck="false"'
        ' required aria-describedby="key-note"> <button type="submit">Use this key</button></form>'
        '<p id="key-note" class="note">The key stays in this browser tab (session storage) and '
        "is sent only in the Authorization header of the console's requests.</p></section>\n"
        '<section id="list-section" aria-labelledby="list-h" hidden>'
        '<h2 id="list-h" tabindex="-1">Incidents</h2>'
        '<div id="list-newest" class="wrap"></div><div id="list-older" class="wrap"></div>'
        '<button id="more" type="button" hidden>Older incidents</button></section>\n'
        '<section id="incident-section" aria-labelledby="incident-h" hidden>'
        '<p><a href="#">All incidents</a></p>'
        '<h2 id="incident-h" tabindex="-1"></h2><div id="incident-facts"></div>'
        '<p id="countdown" class="timer" role="timer"></p>'
        '<section id="counts" aria-labelledby="counts-h" aria-live="polite">'
        '<h3 id="counts-h">Receipts per channel</h3><div id="counts-body" class="wrap"></div>'
        "</section>"
        '<section aria-labelledby="chart-h"><h3 id="chart-h">People reached over time</h3>'
        '<div id="chart"></div></section>'
        '<section aria-labelledby="dead-h"><h3 id="dead-h">Dead letters</h3>'
        '<div id="dead-letters"></div></section>'
        "</section>\n</main>\n"
        '<footer><button id="forget" type="button" hidden>Forget the key</button></footer>\n'
        "</body>\n</html>\n"
    )


SHELL = render_shell()


@routes.get("/console")
@access.public  # the page holds no data; the script calls the API with the operator's key
async def console_page(request: web.Request) -> web.Response:
    return web.Response(
        text=SHELL,
        content_type="text/html",
        charset="utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
        },
    )


@routes.get(SCRIPT_PATH)
@access.public
async def console_script(request: web.Request) -> web.Response:
    return web.Response(
        text=SCRIPT,
        content_type="text/javascript",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )

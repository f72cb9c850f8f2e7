"""`newsflow-web`: the web app under uvicorn, one process per replica (run more behind a proxy to scale)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from newsflow_shared.logging import configure_logging
from newsflow_shared.redact import redact
from newsflow_web.app import create_app
from newsflow_web.settings import WebSettings

log = logging.getLogger("newsflow.web")


def main() -> None:
    try:
        settings = WebSettings()
    except ValidationError as e:
        err = e.errors()[0]
        var = "NEWSFLOW_" + "_".join(str(p) for p in err["loc"]).upper()
        print(f"newsflow-web: bad configuration: {var}: {redact(str(err['msg']))}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging("web", settings.log_level, settings.log_format)
    mode = "token set: writing needs it" if settings.web_token else "read-only (NEWSFLOW_WEB_TOKEN unset)"
    log.info("web app on http://%s:%d, %s", settings.web_host, settings.web_port, mode)
    # SIGTERM: uvicorn stops accepting, lets open requests finish (event streams end), then runs the lifespan's exit.
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()

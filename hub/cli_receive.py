"""``koppelhub receive``: a small webhook receiver for trying the hub on one machine.

It answers the CloudEvents webhook handshake (OPTIONS), verifies each delivery's Standard
Webhooks signature with the subscription's secret (the ``standardwebhooks`` package, as a
real receiver would) and prints the event. The secret is shown once, when the subscription
is created, which is after the receiver must already answer the handshake: so it can come
from ``--secret-file``, read at each delivery, as well as from ``--secret``. A delivery that
arrives before the secret does gets a 503 and is retried by the hub.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    """The aiohttp handlers; ``echo`` prints one line (or block) per request."""

    def __init__(self, secret: Callable[[], str | None], echo: Callable[[str], None]) -> None:
        self._secret, self._echo = secret, echo

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            origin = request.headers.get("WebHook-Request-Origin", "*")
            self._echo(f"handshake from {origin}: allowed")
            return web.Response(headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"})
        if request.method != "POST":
            return web.Response(status=405)
        body = await request.read()
        secret = self._secret()
        if not secret:
            self._echo("delivery refused (503): no secret yet; the hub retries it")
            return web.Response(status=503, headers={"Retry-After": "1"})
        try:
            headers = {name.lower(): value for name, value in request.headers.items()}
            Webhook(secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError as e:
            self._echo(f"delivery REFUSED (401): signature not valid for this secret ({e})")
            return web.Response(status=401)
        self._echo(_describe(request, body))
        return web.Response(status=204)


def _describe(request: web.Request, body: bytes) -> str:
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict):  # binary content mode: the attributes are headers
        event = {k[3:]: v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        event["data"] = body.decode("utf-8", "replace")
    head = f"{event.get('type')}  id={event.get('id')}  subject={event.get('subject')}"
    return (
        f"event {head}  (signature verified, webhook-id {request.headers.get('webhook-id')})\n"
        + json.dumps(event, indent=2, ensure_ascii=False)
    )


def _secret_source(secret: str | None, secret_file: Path | None) -> Callable[[], str | None]:
    def read() -> str | None:
        if secret:
            return secret
        if secret_file is not None and secret_file.is_file():
            return secret_file.read_text(encoding="utf-8").strip() or None
        return None

    return read


def receiver_app(receiver: Receiver) -> web.Application:
    """Every path and method goes to ``receiver`` (the sink URL's path is the user's choice)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    return app


async def _serve(receiver: Receiver, host: str, port: int) -> None:
    runner = web.AppRunner(receiver_app(receiver), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        click.echo(f"Receiving webhooks on http://{host}:{port}/ (Ctrl-C stops)", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command("receive")
@click.option("--port", type=int, default=9000, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--secret", help="The subscription's secret (whsec_…).")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding the secret, read at each delivery (it may be written after start).",
)
def receive_command(port: int, host: str, secret: str | None, secret_file: Path | None) -> None:
    """Print each webhook delivery after verifying its signature (for trying the hub out).

    Subscribe it with a sink of http://127.0.0.1:PORT/ and allow loopback for deliveries:
    KOPPELHUB_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 for the hub.
    """
    if not secret and secret_file is None:
        raise click.UsageError("give --secret or --secret-file (the secret of the subscription)")

    def echo(text: str) -> None:
        click.echo(text)
        sys.stdout.flush()  # one delivery at a time, also when the output is a pipe or a file

    try:
        asyncio.run(_serve(Receiver(_secret_source(secret, secret_file), echo), host, port))
    except OSError as e:
        reason = e.strerror or str(e)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}; try another --port") from e

"""`labinterp codes …` (a clinic's local result codes) and `labinterp mllp` (HL7 v2 over MLLP).

Registered on the `labinterp` group by labinterp/cli.py; the helpers they share with the other
commands (settings, sessions, the operator) are cli.py's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys

import click


@click.group()
def codes() -> None:
    """A clinic's own result codes (HL7 v2 OBX-3 that is not LOINC), mapped to analytes."""


@codes.command("import")
@click.argument("file", metavar="FILE")
@click.option("--clinic", "clinic_name", required=True, help="the clinic whose codes these are")
def codes_import(file: str, clinic_name: str) -> None:
    """Add or change a clinic's codes from a CSV (FILE, or `-` for standard input) with the
    header `system,code,analyte`: OBX-3's coding system (component 3; empty: any system), its
    code (component 1) and an analyte key (magnesium, potassium …). Codes already there take
    the new analyte; importing a file again changes nothing. The whole file is refused,
    naming each bad line, when any line is wrong. Audited."""
    from labinterp.cli import _fail, _operator, _session
    from labinterp.runtime import get_runtime
    from labinterp.services.clinic_codes import import_codes, read_rows
    from labinterp.services.errors import InvalidInput, NotFound

    try:
        if file == "-":
            rows = read_rows(sys.stdin)
        else:
            with open(file, encoding="utf-8-sig", newline="") as stream:
                rows = read_rows(stream)
    except OSError as exc:
        _fail(f"{file}: {exc.strerror or exc}")
    except InvalidInput as exc:
        _fail(f"{file}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items()))
    with _session() as session:
        rt = get_runtime()
        ruleset = rt.current_ruleset()
        try:
            done = import_codes(session, _operator(), clinic_name, rows, ruleset)
        except NotFound:
            _fail(f"no clinic {clinic_name!r}: create it with `labinterp clinics create NAME`")
        except InvalidInput as exc:
            _fail(f"{file}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items()))
    click.echo(
        f"clinic {done.clinic}: {done.added} codes added, {done.changed} changed, "
        f"{done.unchanged} unchanged"
    )


@codes.command("list")
@click.option("--clinic", "clinic_name", required=True)
def codes_list(clinic_name: str) -> None:
    """The clinic's codes, as CSV (the format `codes import` reads)."""
    from labinterp.cli import _fail, _session
    from labinterp.repositories.clinic_codes import code_table
    from labinterp.services.accounts import find_clinic
    from labinterp.services.errors import NotFound

    with _session() as session:
        try:
            clinic = find_clinic(session, clinic_name)
        except NotFound as exc:
            _fail(str(exc))
        table = code_table(session, clinic.id)
    click.echo("system,code,analyte")
    for (system, code), analyte in sorted(table.items()):
        click.echo(f"{system},{code},{analyte}")


@click.command()
@click.option("--port", required=True, type=click.IntRange(0, 65535), help="0: any free port")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="MLLP has no authentication: listen beyond this machine only behind a VPN or a TLS "
    "tunnel that admits the lab alone",
)
@click.option(
    "--clinic", "clinic_name", required=True, help="the clinic every message received is for"
)
def mllp(port: int, host: str, clinic_name: str) -> None:
    """Receive HL7 v2 ORU^R01 messages over MLLP (frames 0x0B … 0x1C 0x0D) for one clinic and
    answer each with its ACK, as POST /hl7/v2 does; many messages per connection, many
    connections at once. Stops on SIGTERM or Ctrl-C after answering the messages in hand."""
    from labinterp.cli import _clinic_ref, _fail
    from labinterp.interop.mllp import Frame, MllpServer
    from labinterp.runtime import get_runtime
    from labinterp.services.audit import Actor
    from labinterp.services.hl7_intake import receive_oru, reject

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("labinterp.mllp")
    log.setLevel(logging.INFO)  # one line per message answered
    clinic = _clinic_ref(clinic_name)
    rt = get_runtime()
    limit = rt.settings.max_body
    # what a clinic token for this clinic may do, and no more; its name goes in the audit trail
    actor = Actor(
        name=f"mllp:{clinic.name}"[:200],
        role="clinic",
        clinic_ids=frozenset({clinic.id}),
        clinic_names={clinic.id: clinic.name},
    )

    def answer(frame: Frame, address: str) -> bytes:
        if frame.oversized:
            return reject(b"", f"the message is larger than {limit} bytes", "207").ack.encode()
        try:
            ruleset = rt.current_ruleset()
            received = receive_oru(
                rt.engine,
                actor.at_address(address),
                clinic,
                frame.content,
                ruleset,
                dt.datetime.now(dt.UTC),
            )
        except Exception:  # the listener answers every frame; a failure is an AR, not a crash
            log.exception("mllp: a message from %s could not be stored", address)
            received = reject(
                frame.content,
                "labinterp could not store the message now (internal error); send it again",
            )
        log.info("mllp: %s from %s", received.code, address)
        return received.ack.encode()

    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(
            f"warning: MLLP has no authentication: anyone who reaches {host}:{port} posts "
            f"results for clinic {clinic.name}",
            err=True,
        )

    def ready(bound_host: str, bound_port: int) -> None:
        click.echo(f"mllp: listening on {bound_host}:{bound_port} for clinic {clinic.name}")
        sys.stdout.flush()

    server = MllpServer(answer, host, port, limit)
    try:
        asyncio.run(server.serve(ready))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    click.echo("mllp: stopped")

"""HL7 v2 over real sockets: `labinterp mllp` beside `labinterp serve` on the embedded default.
ORU^R01 messages built with hl7apy go in over MLLP (several on one connection, two
connections at once, a garbled frame among them) and over HTTP (POST /hl7/v2); the ACKs are
parsed back with hl7apy; the panels are interpreted by serve's worker and read over HTTP;
SIGTERM stops the listener cleanly."""

from __future__ import annotations

import signal
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.hl7_builder import Ack, Obr, Obx, Oru, parse_ack
from tests.integration.worker_process import (
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = pytest.mark.worker

START, END = b"\x0b", b"\x1c\x0d"
K_LOW = Obx("2823-3", "Potassium", "LN", "2.9", unit="mmol/L", range="3.5-5.1", flag="L")
MG_LOW = Obx("2601-3", "Magnesium", "LN", "0.50", unit="mmol/L", range="0.70_1.00", flag="L")


class MllpClient:
    """One MLLP connection: send a frame, read the ACK frame back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.pending = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_ack(self) -> Ack:
        while END not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "the listener closed the connection instead of answering"
            self.pending += chunk
        frame, self.pending = self.pending.split(END, 1)
        assert frame.startswith(START)
        return parse_ack(frame[1:])

    def exchange(self, message: bytes) -> Ack:
        self.send_raw(START + message + END)
        return self.read_ack()

    def close(self) -> None:
        self.sock.close()


def _env(instance: Path) -> dict[str, str]:
    return {"LABINTERP_INSTANCE": str(instance), "DATABASE_URL": "", "CELERY_BROKER_URL": ""}


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _post_hl7(base: str, token: str, data: bytes) -> Ack:
    request = urllib.request.Request(f"{base}/hl7/v2", data=data, method="POST")
    request.add_header("Content-Type", "application/hl7-v2")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith(
            "application/hl7-v2"
        )
        return parse_ack(response.read())


def _interpreted(base: str, token: str, accession: str) -> dict[str, Any] | None:
    _, page = http_json("GET", f"{base}/api/v1/panels?accession={accession}", token)
    if not page["items"] or page["items"][0]["status"] == "queued":
        return None
    return http_json("GET", f"{base}/api/v1/panels/{page['items'][0]['id']}", token)[1]


def test_mllp_and_http_take_oru_messages_and_answer_acks(tmp_path: Path) -> None:
    env = _env(tmp_path / "instance")
    labinterp_cli(env, "clinics", "create", "lab")
    token = (
        labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "lab")
        .strip()
        .splitlines()[-1]
    )
    http_port, mllp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    mllp_log = tmp_path / "mllp.log"
    with (
        labinterp_process(["serve", "--port", str(http_port)], env, tmp_path / "serve.log"),
        labinterp_process(
            ["mllp", "--port", str(mllp_port), "--clinic", "lab"], env, mllp_log
        ) as listener,
    ):
        wait_until(lambda: "listening on" in mllp_log.read_text(), 60, 0.1, "mllp to listen")
        wait_until(lambda: _ready(base), 60, 0.2, "serve to be ready")

        # several messages on one connection: new, retransmitted, garbled, bad unit, LF + BOM
        one = MllpClient(mllp_port)
        first = Oru([Obr([K_LOW, MG_LOW], filler="MLLP-1")], control_id="M-1").bytes()
        ack = one.exchange(first)
        assert (ack.code, ack.control_id) == ("AA", "M-1")
        again = one.exchange(first)
        assert (again.code, again.control_id) == ("AA", "M-1") and "(0 new)" in again.text
        garbled = one.exchange(b"\x00\xffnot hl7 at all")
        assert garbled.code == "AR" and "MSH" in garbled.text
        bad = Obx("2823-3", "Potassium", "LN", "2.9", unit="mg/dL")
        refused = one.exchange(Oru([Obr([bad], filler="MLLP-BAD")], control_id="M-3").bytes())
        assert (refused.code, refused.control_id) == ("AE", "M-3")
        assert refused.errors[0]["location"] == "OBX^1^6"
        lf_bom = Oru([Obr([MG_LOW], filler="MLLP-LF")], version="2.3", control_id="M-4")
        assert one.exchange(lf_bom.bytes("\n", bom=True)).code == "AA"
        # two frames in one write, the second split over two writes
        two = [Oru([Obr([K_LOW], filler=f"MLLP-W{n}")]).bytes() for n in (1, 2)]
        one.send_raw(START + two[0] + END + START + two[1][:20])
        one.send_raw(two[1][20:] + END)
        assert [one.read_ack().code, one.read_ack().code] == ["AA", "AA"]

        # two connections at once, each sending its messages while the other does
        codes: dict[str, list[str]] = {}

        def sender(name: str) -> None:
            client = MllpClient(mllp_port)
            try:
                codes[name] = [
                    client.exchange(Oru([Obr([K_LOW], filler=f"{name}-{n}")]).bytes()).code
                    for n in range(3)
                ]
            finally:
                client.close()

        threads = [threading.Thread(target=sender, args=(n,)) for n in ("CONN-A", "CONN-B")]
        for thread in threads:
            thread.start()
        ack_on_first = one.exchange(Oru([Obr([K_LOW], filler="MLLP-MID")]).bytes())
        for thread in threads:
            thread.join(60)
        assert codes == {"CONN-A": ["AA"] * 3, "CONN-B": ["AA"] * 3}
        assert ack_on_first.code == "AA"  # the first connection still open and served
        one.close()

        # over HTTP: the same message as over MLLP is a repeat; a new one is stored
        assert "(0 new)" in _post_hl7(base, token, first).text
        http_ack = _post_hl7(base, token, Oru([Obr([MG_LOW], filler="HTTP-1")]).bytes())
        assert http_ack.code == "AA" and "(1 new)" in http_ack.text

        for accession in ("MLLP-1", "HTTP-1"):
            panel = wait_until(
                lambda a=accession: _interpreted(base, token, a), 60, 0.1, f"{accession} judged"
            )
            assert panel["status"] == "interpreted"
        findings = {
            f["code"] for f in _interpreted(base, token, "MLLP-1")["interpretation"]["findings"]
        }  # type: ignore[index]
        assert {"hypokalemia", "hypomagnesemia"} <= findings

        listener.send_signal(signal.SIGTERM)
        assert listener.wait(timeout=30) == 0
    log = mllp_log.read_text()
    assert "mllp: stopped" in log and "Traceback" not in log, log[-3000:]

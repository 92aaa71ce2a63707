"""MLLP framing (labinterp.interop.mllp.FrameReader): frames come whole whatever the writes,
junk before a start byte is dropped, a frame over the limit is reported once its end comes
and the frames after it are read as usual."""

from __future__ import annotations

from labinterp.interop.mllp import END, START, FrameReader


def contents(reader: FrameReader, *writes: bytes) -> list[bytes | str]:
    out: list[bytes | str] = []
    for data in writes:
        out += ["TOO LARGE" if f.oversized else f.content for f in reader.feed(data)]
    return out


def test_two_frames_in_one_write_and_one_frame_over_three_writes() -> None:
    reader = FrameReader(1000)
    assert contents(reader, START + b"MSH|1" + END + START + b"MSH|2" + END) == [b"MSH|1", b"MSH|2"]
    assert contents(reader, START + b"MSH", b"|3\x1c", b"\r") == [b"MSH|3"]


def test_junk_before_a_start_byte_is_dropped_and_an_end_without_start_is_a_frame() -> None:
    reader = FrameReader(1000)
    assert contents(reader, b"\r\n\r\n" + START + b"MSH|1" + END) == [b"MSH|1"]
    # a sender that forgot the start byte: its bytes are still answered (by an AR or an ACK)
    assert contents(FrameReader(1000), b"MSH|2" + END) == [b"MSH|2"]


def test_a_frame_over_the_limit_is_reported_once_and_the_next_frame_is_read() -> None:
    reader = FrameReader(10)
    out = contents(reader, START + b"x" * 8, b"y" * 8, b"z" * 8 + END + START + b"MSH|ok" + END)
    assert out == ["TOO LARGE", b"MSH|ok"]
    assert len(reader.buffer) == 0

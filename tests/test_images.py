"""Bad input gets a typed, Rekognition-named error with a useful message; good input in every form decodes."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from facecompare import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    Settings,
)
from facecompare.images import load_image


def _jpeg(size=(200, 160), color=(120, 80, 40), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", **save)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_not_an_image_is_invalid_format():
    with pytest.raises(InvalidImageFormatException, match="not a JPEG or PNG"):
        load_image(b"GIF89a this is not what we accept")


def test_text_file_is_invalid_format(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am not a photo")
    with pytest.raises(InvalidImageFormatException):
        load_image(path)


def test_empty_bytes_are_invalid_parameter():
    with pytest.raises(InvalidParameterException, match="empty"):
        load_image(b"")


def test_truncated_jpeg_is_invalid_format(fixtures):
    data = (fixtures / "obama.jpg").read_bytes()
    with pytest.raises(InvalidImageFormatException, match="could not be decoded|cannot read"):
        load_image(data[: len(data) // 3])


def test_truncated_png_is_invalid_format():
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, size=(120, 120, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert len(data) > 20_000
    with pytest.raises(InvalidImageFormatException):
        load_image(bytes(data[:20_000]))  # cut inside the compressed pixel data


def test_jpeg_magic_with_garbage_is_invalid_format():
    with pytest.raises(InvalidImageFormatException):
        load_image(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40)


def test_tiny_image_is_invalid_parameter():
    with pytest.raises(InvalidParameterException, match="at least 80"):
        load_image(_jpeg((79, 200)))


def test_bytes_over_limit_are_too_large():
    data = _jpeg((300, 300))
    with pytest.raises(ImageTooLargeException, match="over the limit"):
        load_image(data, Settings(max_image_bytes=len(data) - 1))


def test_default_bytes_limit_is_five_mib():
    big = b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)
    with pytest.raises(ImageTooLargeException):
        load_image(big)


def test_decompression_bomb_is_refused_fast_without_decoding():
    bomb = _png_header_only(100_000, 100_000)  # 10 gigapixels, a few hundred bytes
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeException, match="megapixels"):
        load_image(bomb)
    assert time.perf_counter() - started < 1.0  # refused from the header, no decode attempted


@pytest.mark.parametrize("value", [42, None, 3.5, {"Bytes": b"x"}, ["a"]])
def test_wrong_types_are_invalid_parameter(value):
    with pytest.raises(InvalidParameterException, match="Unsupported image type"):
        load_image(value)


def test_missing_file_is_invalid_parameter(tmp_path):
    with pytest.raises(InvalidParameterException, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_directory_is_invalid_parameter(tmp_path):
    with pytest.raises(InvalidParameterException, match="not a file"):
        load_image(tmp_path)


def test_text_mode_file_object_is_invalid_parameter(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc")
    with open(path) as handle, pytest.raises(InvalidParameterException, match="binary mode"):
        load_image(handle)


def test_float_array_is_invalid_parameter():
    with pytest.raises(InvalidParameterException, match="uint8"):
        load_image(np.zeros((100, 100, 3), dtype=np.float32))


def test_array_with_wrong_shape_is_invalid_parameter():
    with pytest.raises(InvalidParameterException, match="shape"):
        load_image(np.zeros((100, 100, 2), dtype=np.uint8))


def test_all_source_forms_decode_to_the_same_pixels(fixtures):
    path = fixtures / "obama.jpg"
    data = path.read_bytes()
    pil = Image.open(path)
    reference = load_image(data).view(1)
    with open(path, "rb") as handle:
        from_file = load_image(handle).view(1)
    assert np.array_equal(load_image(path).view(1), reference)
    assert np.array_equal(from_file, reference)
    assert np.array_equal(load_image(pil).view(1), reference)
    assert np.array_equal(load_image(np.asarray(pil.convert("RGB"))).view(1), reference)


def test_grayscale_rgba_and_16bit_png_become_rgb():
    for mode, value in (("L", 100), ("RGBA", (10, 20, 30, 255)), ("I;16", 40000)):
        buf = io.BytesIO()
        Image.new(mode, (100, 90), value).save(buf, format="PNG")
        view = load_image(buf.getvalue()).view(1)
        assert view.shape == (90, 100, 3) and view.dtype == np.uint8


def test_exif_orientation_is_applied(fixtures):
    upright = Image.open(fixtures / "obama.jpg").convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    image = load_image(buf.getvalue())
    assert (image.width, image.height) == upright.size
    assert image.view(1).shape[:2] == (upright.height, upright.width)
    diff = np.abs(image.view(1).astype(int) - np.asarray(upright).astype(int)).mean()
    assert diff < 6  # the same picture up to JPEG re-encoding


def test_reduced_jpeg_views_are_smaller_and_consistent(fixtures):
    image = load_image((fixtures / "obama.jpg").read_bytes())
    full = image.view(1)
    half = image.view(2)
    assert abs(half.shape[1] - full.shape[1] / 2) <= 1
    assert image.scale_of(half) == pytest.approx(2.0, rel=0.01)

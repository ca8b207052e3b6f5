"""Bad input gets a typed, Rekognition-named error with a useful message; good input in every form decodes."""

from __future__ import annotations

import io
import struct
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


def test_decompression_bomb_is_refused_from_the_header():
    """10 gigapixels: over twice Pillow's own guard, which trips while the header is read."""
    with pytest.raises(ImageTooLargeException, match="header declares more than"):
        load_image(_png_header_only(100_000, 100_000))


@pytest.mark.parametrize("width,height", [(8001, 8001), (64_001, 1000)])
def test_header_just_over_our_pixel_limit_is_refused_before_decoding(width, height):
    """Just over our own limit (64 MP by default) and under Pillow's guard (89 MP): our check refuses it from the
    header (the 1000-byte IDAT could not fill it, so a decode would fail with a format error instead)."""
    assert width * height > Settings().max_pixels and width * height < Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLargeException, match=rf"{width}x{height} = 64\.0 megapixels, over the limit of 64"):
        load_image(_png_header_only(width, height))
    # and the limit is the setting's: the same header is refused under a lower limit, by our message
    with pytest.raises(ImageTooLargeException, match="over the limit of 1"):
        load_image(_png_header_only(1001, 1000), Settings(max_pixels=1_000_000))


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


def _png(mode: str, value, size=(100, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode,value,rgb", [
    ("L", 100, (100, 100, 100)),
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),  # opaque: alpha dropped
    ("RGBA", (10, 20, 30, 0), (255, 255, 255)),  # fully transparent: the white background
    # half transparent on white: 200*128/255 + 255*127/255 = 227.4, 0 + 127 = 127
    ("RGBA", (200, 0, 0, 128), (227, 127, 127)),
    ("LA", (60, 255), (60, 60, 60)),
    ("I;16", 40000, (156, 156, 156)),  # 16-bit: 40000 / 257 = 155.6, not 255 (the image's own maximum)
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 0, (0, 0, 0)),
    ("I;16", 25700, (100, 100, 100)),  # 100 * 257
])
def test_png_modes_decode_to_the_right_rgb_values(mode, value, rgb):
    view = load_image(_png(mode, value)).view(1)
    assert view.shape == (90, 100, 3) and view.dtype == np.uint8
    assert np.abs(view.astype(int) - np.array(rgb)).max() <= 1, (view[0, 0], rgb)


def test_16bit_png_values_do_not_depend_on_the_rest_of_the_image():
    """A dark 16-bit scan stays dark, and each half keeps its value whether or not the other half is present, on
    the full-size path and on the band-by-band path of an image over the working size."""
    array = np.full((200, 300), 12850, dtype=np.uint16)  # 50 * 257
    array[:, 150:] = 25700  # 100 * 257
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    for settings in (Settings(), Settings(max_working_pixels=20_000)):  # 60,000 px: the second is reduced by 2
        image = load_image(buf.getvalue(), settings)
        view = image.view(image.base_reduction)
        assert view[:, : view.shape[1] // 2 - 2].max() == view[:, : view.shape[1] // 2 - 2].min() == 50
        assert view[:, view.shape[1] // 2 + 2:].max() == view[:, view.shape[1] // 2 + 2:].min() == 100


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


@pytest.mark.parametrize("reduction", [1, 2])
def test_a_region_at_a_turn_is_the_turned_views_pixels_without_turning_the_view(fixtures, reduction):
    """``DecodedImage.region(reduction, rotation, box)`` is ``view(reduction, rotation)[y1:y2, x1:x2]``, boxes
    reaching past the edges included, cut from the upright view without making the turned one; with the turned
    view already decoded, it is cut from that."""
    rng = np.random.default_rng(3)
    data = (fixtures / "obama.jpg").read_bytes()
    for rotation in (0, 90, 180, 270):
        decoded = load_image(data)
        whole = np.ascontiguousarray(np.rot90(decoded.view(reduction, 0), k=-(rotation // 90)))
        assert decoded.view_shape(reduction, rotation) == whole.shape[:2]
        h, w = whole.shape[:2]
        for _ in range(200):
            x1, x2 = sorted(int(v) for v in rng.integers(-20, w + 20, 2))
            y1, y2 = sorted(int(v) for v in rng.integers(-20, h + 20, 2))
            want = whole[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
            got = decoded.region(reduction, rotation, (x1, y1, x2, y2))
            assert got.shape == want.shape and np.array_equal(got, want), (rotation, x1, y1, x2, y2)
        assert not decoded.has_view(reduction, rotation) or rotation == 0
        decoded.view(reduction, rotation)  # the turned view decoded: cut from it, the same pixels
        assert np.array_equal(decoded.region(reduction, rotation, (5, 7, 60, 90)), whole[7:90, 5:60])


def test_the_kept_heap_goes_back_before_a_png_over_the_working_size_is_decoded(monkeypatch):
    """A PNG (or WebP) decodes at full size in fresh pages; the heap glibc kept from earlier calls is returned first
    (once, before any pixel is decoded), so it is not held beside it. A PNG within the working size, any PNG when
    there is no working size, and a JPEG over it (DCT-scaled, never decoded at full size) do not pay for the trim."""
    import facecompare.images as images

    calls: list[bool] = []
    real_open, real_decode = Image.open, images.decode_upright
    opened: list[Image.Image] = []
    decoding: list[str] = []  # formats that reached decode_upright (where a WebP's pixels are decoded)

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    def recording_decode(im, fmt, *args):
        decoding.append(fmt)
        return real_decode(im, fmt, *args)

    def recording_release():
        # were pixels decoded already? A PNG's tiles are gone once it is; a WebP's are decoded in decode_upright
        im = opened[-1]
        calls.append(bool(decoding) and decoding[-1] == "WebP" if im.format == "WEBP" else not im.tile)

    monkeypatch.setattr(images, "release_freed_memory", recording_release)
    monkeypatch.setattr(images, "decode_upright", recording_decode)
    monkeypatch.setattr(images.Image, "open", recording_open)
    settings = Settings(max_working_pixels=1_000_000)

    def encoded(size, fmt):
        buffer = io.BytesIO()
        Image.new("RGB", size, (200, 180, 160)).save(buffer, fmt)
        return buffer.getvalue()

    decoded = load_image(encoded((1500, 1000), "PNG"), settings)
    assert calls == [False] and decoded.base_reduction == 2 and decoded.width == 1500
    load_image(encoded((900, 900), "PNG"), settings)
    load_image(encoded((1500, 1000), "JPEG"), settings)
    assert calls == [False]
    load_image(encoded((1500, 1000), "PNG"), Settings(max_working_pixels=0))  # no working size: nothing to trim for
    assert calls == [False]
    decoding.clear()
    decoded = load_image(encoded((1500, 1000), "WEBP"), settings)  # WebP and AVIF decode at full size as PNG does
    assert calls == [False, False] and decoding == ["WebP"] and decoded.base_reduction == 2

"""Images → input tensors: JPEG/PNG headers are read first (Pillow opens lazily) and refused over
``max_image_pixels`` per image or ``max_request_pixels`` per request before any pixel is decoded; JPEGs decode at
a reduced scale when the model's input is smaller. Pillow is imported only here, only for image models.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from runtime.inputs import InputError, Inputs, InputSpec, PayloadTooLargeError, UnsupportedMediaTypeError


def _pil():
    """Pillow, imported only for image models; 415 when this image was built without it."""
    try:
        import warnings

        from PIL import Image
    except ImportError:
        raise UnsupportedMediaTypeError("this server cannot decode images (Pillow is not installed)") from None
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused by open_images() anyway
    return Image


def open_images(blobs: list[tuple[bytes, list[str | int]]], spec: InputSpec) -> list[Any]:
    """Open every image lazily (header only) and refuse formats, sizes and pixel totals over the limits."""
    if spec.manifest.image is None:
        raise UnsupportedMediaTypeError("this model does not take images (model.json has no 'image' section)")
    spec.check_rows(len(blobs), "images")
    Image = _pil()
    Image.MAX_IMAGE_PIXELS = spec.max_image_pixels  # Pillow's own check (it raises above 2×) as a backstop
    images, total = [], 0
    try:
        for data, loc in blobs:
            try:
                img = Image.open(io.BytesIO(data))
            except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
                raise InputError(loc, "cannot decode image: send a JPEG or PNG file") from None
            images.append(img)
            if img.format not in ("JPEG", "PNG"):
                raise InputError(loc, f"unsupported image format {img.format}; send JPEG or PNG")
            w, h = img.size
            if w * h > spec.max_image_pixels:
                raise PayloadTooLargeError(f"{'.'.join(map(str, loc))}: image of {w}x{h} pixels is above "
                                           f"max_image_pixels ({spec.max_image_pixels})")
            total += w * h
            if total > spec.max_request_pixels:
                raise PayloadTooLargeError(f"the images of this request hold more than max_request_pixels "
                                           f"({spec.max_request_pixels}) pixels")
    except BaseException:
        for img in images:
            img.close()
        raise
    return images


def decode_images(blobs: list[tuple[bytes, list[str | int]]], spec: InputSpec) -> list[np.ndarray]:
    """JPEG/PNG bodies → float32 tensors per the manifest's image spec; sizes checked before any decoding."""
    images = open_images(blobs, spec)
    try:
        return [_decode(img, spec, loc) for img, (_, loc) in zip(images, blobs, strict=True)]
    finally:
        for img in images:
            img.close()


def decode_image(data: bytes, spec: InputSpec, loc: list[str | int]) -> np.ndarray:
    """One JPEG/PNG → a float32 tensor laid out per the manifest's image spec (without the batch axis)."""
    return decode_images([(data, loc)], spec)[0]


def _decode(img: Any, spec: InputSpec, loc: list[str | int]) -> np.ndarray:
    Image = _pil()
    img_spec = spec.manifest.image
    mode = "RGB" if img_spec.channels == 3 else "L"
    try:
        if img.format == "JPEG":
            img.draft(mode, (img_spec.width, img_spec.height))  # decode at 1/2..1/8 scale when that suffices
        img = img.convert(mode).resize((img_spec.width, img_spec.height), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise InputError(loc, "cannot decode image: the file is damaged or truncated") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = arr * np.float32(img_spec.scale)
    if img_spec.mean and img_spec.std:
        arr = (arr - np.asarray(img_spec.mean, np.float32)) / np.asarray(img_spec.std, np.float32)
    if img_spec.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def images_to_inputs(images: list[np.ndarray], spec: InputSpec) -> Inputs:
    if spec.single is None:
        raise InputError(["body"], "image upload needs a single-input model")
    name = spec.single.name
    return {name: spec.check(name, np.stack(images), ["file"])}

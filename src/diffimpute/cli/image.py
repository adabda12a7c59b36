"""``diffimpute inpaint``: fill the missing pixels of images given as ``.npy`` or PNG files.

Which pixels are missing:

- ``.npy``: NaN entries. The array is ``(n, height, width)``, ``(n, height, width, channels)``
  or one grey image ``(height, width)``.
- PNG: pixels whose alpha is 0 (transparent), pixels of ``--missing-color R,G,B`` exactly, or the
  non-black pixels of a ``--mask`` PNG of the same size (one mask for every input). Alpha is only
  a marker: the inpainted PNG has the colour channels alone.

Every file of a run must have the same size. The model learns from the observed pixels of the
inputs themselves, or of ``--train`` images (a ``.npy`` stack or PNGs) when given; ``--model``
loads a saved inpainter instead of fitting, ``--save`` keeps the fitted one.

Written to ``--output`` (a folder): ``inpainted.npy`` and ``uncertainty.npy`` (the median and the
width of the 90 % interval, the input's shape), ``inpainting.png`` (original / masked / inpainted /
uncertainty for up to 8 images), and for PNG inputs ``<name>-inpainted.png`` and
``<name>-uncertainty.png`` (the width scaled to the image's range, white = widest).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import click
import numpy as np

from diffimpute.io.files import atomic_write_bytes

_PNG = ".png"
_NPY = ".npy"


# ---------------------------------------------------------------------------- reading


def _read_png(path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Pixels ``(H, W)`` or ``(H, W, 3)`` as float64, the alpha channel (None without one), and the
    largest value the file's bit depth allows (255 or 65535)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA")
                mode = "RGBA"
            elif mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I"):
                image = image.convert("RGBA" if "A" in mode else "RGB")
                mode = image.mode
            pixels = np.asarray(image, dtype=np.float64)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path} is not a readable PNG ({error})") from None
    top = 65535 if mode in ("I;16", "I") else 255
    if mode in ("LA", "RGBA"):
        return pixels[..., :-1].squeeze(-1) if mode == "LA" else pixels[..., :3], pixels[..., -1], top
    return pixels, None, top


def _parse_colour(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    try:
        colour = np.asarray([float(part) for part in text.split(",")])
    except ValueError:
        raise ValueError(f"--missing-color must be R,G,B (or one grey level), e.g. 255,0,255; got {text!r}") from None
    if len(colour) not in (1, 3):
        raise ValueError(f"--missing-color must have 1 (grey) or 3 (RGB) numbers, got {text!r}")
    return colour


def _read_pngs(paths: list[Path], mask: Path | None, colour: np.ndarray | None) -> tuple[np.ndarray, int]:
    """PNG files -> a stack ``(n, H, W[, 3])`` with NaN at missing pixels, and the bit depth's top value."""
    stack, tops = [], set()
    hole = None
    if mask is not None:
        mask_pixels, _, _ = _read_png(mask)
        hole = (mask_pixels.reshape(*mask_pixels.shape[:2], -1) > 0).any(axis=-1)
    for path in paths:
        pixels, alpha, top = _read_png(path)
        tops.add(top)
        missing = np.zeros(pixels.shape[:2], dtype=bool) if alpha is None else alpha == 0
        if hole is not None:
            if hole.shape != missing.shape:
                raise ValueError(f"--mask {mask} is {hole.shape[1]} x {hole.shape[0]} pixels but {path} is "
                                 f"{missing.shape[1]} x {missing.shape[0]}; they must be the same size")
            missing |= hole
        if colour is not None:
            if (pixels.ndim == 2) != (len(colour) == 1):
                kind = "grey" if pixels.ndim == 2 else "colour"
                raise ValueError(f"{path} is a {kind} image; give --missing-color as "
                                 f"{'one grey level' if pixels.ndim == 2 else 'R,G,B'}")
            missing |= (pixels.reshape(*pixels.shape[:2], -1) == colour).all(axis=-1)
        stack.append(np.where(missing[..., None] if pixels.ndim == 3 else missing, np.nan, pixels))
    shapes = {image.shape for image in stack}
    if len(shapes) > 1:
        raise ValueError(f"the PNG files differ in size or colour ({sorted(shapes)}); pass images of one size and kind")
    return np.stack(stack), max(tops)


def _read_images(paths: tuple[str, ...], mask: str | None, colour: str | None) -> tuple[np.ndarray, bool, int | None]:
    """The images of ``paths`` (all ``.npy`` or all PNG): the stack, whether a 2-D ``.npy`` was one
    image, and the PNG bit depth's top value (None for ``.npy``)."""
    files = [Path(p) for p in paths]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"no file at {file}")
    suffixes = {file.suffix.lower() for file in files}
    if suffixes == {_NPY}:
        if len(files) > 1:
            raise ValueError("pass one .npy file holding all images (n, height, width[, channels])")
        if mask is not None or colour is not None:
            raise ValueError("--mask and --missing-color are for PNG inputs; in a .npy file NaN marks missing values")
        try:
            array = np.load(files[0], allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{files[0]} is not a numeric .npy array ({error})") from None
        return (array[None], True, None) if array.ndim == 2 else (array, False, None)
    if suffixes == {_PNG}:
        images, top = _read_pngs(files, None if mask is None else Path(mask), _parse_colour(colour))
        return images, False, top
    raise ValueError(f"inputs must be all .npy or all .png files, got {sorted(suffixes)}")


# ---------------------------------------------------------------------------- writing


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _png_bytes(pixels: np.ndarray, top: int) -> bytes:
    from PIL import Image

    dtype = np.uint16 if top > 255 else np.uint8
    image = Image.fromarray(np.clip(np.round(pixels), 0, top).astype(dtype))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------- command


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--mask", default=None, type=click.Path(dir_okay=False),
              help="PNG of the inputs' size whose non-black pixels are missing (PNG inputs).")
@click.option("--missing-color", default=None, help="Pixels of exactly this R,G,B (or grey level) are missing (PNG inputs).")
@click.option("--train", "train_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Learn from these images (.npy or PNG; repeat for several) instead of the inputs.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="Use this saved inpainter instead of fitting one.")
@click.option("--save", "save_path", default=None, type=click.Path(dir_okay=False), help="Save the fitted inpainter here.")
@click.option("--max-steps", type=int, default=None, help="Optimiser steps of training (default 1000).")
@click.option("--time-budget", type=float, default=None, help="A cap on training seconds (default 240).")
@click.option("--conditioning", type=click.Choice(["conditional", "repaint"]), default=None,
              help="How the model sees the given pixels (repaint needs --guess none).")
@click.option("--guess", type=click.Choice(["auto", "harmonic", "neighbours", "none"]), default=None,
              help="First guess the model refines [default: auto, chosen on held-out pixels].")
@click.option("--n-samples", type=int, default=None, help="Draws per missing value (default: the model's).")
@click.option("--device", default=None, help="auto, cpu or cuda (default auto).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars or messages.")
def inpaint(inputs, output, mask, missing_color, train_paths, model_path, save_path, max_steps, time_budget,
            conditioning, guess, n_samples, device, seed, quiet):
    """Fill the missing pixels of INPUTS (one .npy stack, or PNG files of one size)."""
    from diffimpute.report.image_plots import inpainting_figure
    from diffimpute.report.plots import figure_bytes
    from diffimpute.tasks.image import ImageInpainter

    try:
        images, single, top = _read_images(inputs, mask, missing_color)
        started = time.perf_counter()
        if model_path is not None:
            if train_paths or save_path or any(v is not None for v in (max_steps, time_budget, conditioning, guess)):
                raise ValueError("--model uses a saved inpainter; --train, --save, --max-steps, --time-budget, "
                                 "--conditioning and --guess are for fitting a new one")
            model = ImageInpainter.load(model_path)
            model.set_params(verbose=not quiet, **({} if device is None else {"device": device}))
        else:
            train, _, _ = _read_images(train_paths, None, None) if train_paths else (images, False, None)
            options = {"max_steps": max_steps, "time_budget": time_budget, "conditioning": conditioning,
                       "guess": guess, "device": device}
            model = ImageInpainter(random_state=seed, verbose=not quiet,
                                   **{k: v for k, v in options.items() if v is not None}).fit(train)
            if save_path:
                model.save(save_path)
        fit_seconds = time.perf_counter() - started
        result = model.impute(images, n_samples=n_samples, seed=seed)
        median, width = result.median(), result.interval_width(0.1)
        folder = Path(output)
        atomic_write_bytes(folder / "inpainted.npy", _npy_bytes(median[0] if single else median))
        atomic_write_bytes(folder / "uncertainty.npy", _npy_bytes(width[0] if single else width))
        figure = inpainting_figure(images, median, width)
        atomic_write_bytes(folder / "inpainting.png", figure_bytes(figure))
        if top is not None:
            span = np.nanmax(images) - np.nanmin(images)
            for path, filled, spread in zip(inputs, median, width):
                stem = Path(path).stem
                atomic_write_bytes(folder / f"{stem}-inpainted.png", _png_bytes(filled, top))
                grey = spread.mean(axis=-1) if spread.ndim == 3 else spread
                atomic_write_bytes(folder / f"{stem}-uncertainty.png",
                                   _png_bytes(grey / (span if span > 0 else 1.0) * top, top))
    except (ValueError, TypeError, FileNotFoundError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if not quiet:
        missing = int(result.missing.any(axis=-1).sum())
        click.echo(f"{'loaded' if model_path else 'fitted'} in {fit_seconds:.1f} s; inpainted {missing} pixels of "
                   f"{len(images)} image(s); written to {output}")

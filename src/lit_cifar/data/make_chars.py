"""`python -m lit_cifar.data.make_chars --out data/chars`: render a synthetic 52-class character set in
the layout `data=chars` reads (`train/`, `val/`, `test/` with class folders `digit_0`, `upper_A`, `lower_a`).

The symbols follow report 004's label map: 10 digits, 25 upper-case and 17 lower-case letters. Its exact
letters are not legible, so the ones left out are those a reader cannot tell apart: upper-case O (the digit
0), lower-case c o s u v w x z (a smaller capital in nearly every font) and l (an I or a 1).

Each image is one symbol in a font drawn at random (Pillow's built-in font and every TrueType/OpenType
font found in `--font-dirs`), with random stroke width, scale, rotation, position, blur, brightness and
noise, white on black, as a size×size grayscale PNG. The same arguments and fonts give the same images.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rich.progress import track

from lit_cifar.data.chars import SPLITS, folder_name
from lit_cifar.run.commands import command
from lit_cifar.run.errors import UserError, exit_on_user_error

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNPQRSTUVWXYZ"
LOWER = "abdefghijkmnpqrty"
ALPHABET = DIGITS + UPPER + LOWER
FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)
RENDER_SIZE = 64  # glyphs are drawn this large, then scaled to the image


def render(font: ImageFont.FreeTypeFont, symbol: str, stroke: int = 0) -> Image.Image:
    """The symbol white on black, cut to the font's full line height, so that lower-case letters keep
    their size and height relative to capitals (what tells `p` from `P` and `k` from `K`)."""
    ascent, descent = font.getmetrics()
    left, _, right, _ = font.getbbox(symbol, stroke_width=stroke, anchor="ls")
    image = Image.new("L", (max(right - left, 1), ascent + descent + 2 * stroke))
    ImageDraw.Draw(image).text(
        (-left, ascent + stroke), symbol, fill=255, font=font, anchor="ls", stroke_width=stroke, stroke_fill=255
    )
    return image


def draws_all(font: ImageFont.FreeTypeFont, symbols: str) -> bool:
    """True when the font draws every symbol with ink and no two alike (a font lacking letters draws
    them all as the same empty box)."""
    glyphs = [render(font, symbol) for symbol in symbols]
    return all(g.getbbox() for g in glyphs) and len({(g.size, g.tobytes()) for g in glyphs}) == len(symbols)


def load_fonts(font_dirs: Sequence[str], symbols: str) -> list[ImageFont.FreeTypeFont]:
    """Pillow's built-in font, then every font file under `font_dirs` that draws all the symbols."""
    fonts = [ImageFont.load_default(size=RENDER_SIZE)]
    for folder in map(Path, font_dirs):
        paths = folder.expanduser().rglob("*") if folder.expanduser().is_dir() else []
        for path in sorted(p for p in paths if p.suffix.lower() in (".ttf", ".otf")):
            try:
                font = ImageFont.truetype(str(path), RENDER_SIZE)
            except OSError:
                continue
            if draws_all(font, symbols):
                fonts.append(font)
    return fonts


def draw_sample(symbol: str, fonts: list[ImageFont.FreeTypeFont], size: int, rng: np.random.Generator) -> Image.Image:
    glyph = render(fonts[rng.integers(len(fonts))], symbol, stroke=int(rng.integers(0, 4)))
    scale = rng.uniform(0.6, 0.95) * size / glyph.height
    glyph = glyph.resize(
        (max(round(glyph.width * scale), 1), max(round(glyph.height * scale), 1)), Image.Resampling.BILINEAR
    )
    glyph = glyph.rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR, expand=True)
    glyph.thumbnail((size, size))  # a wide, turned glyph may not fit otherwise
    image = Image.new("L", (size, size))
    image.paste(glyph, (int(rng.integers(size - glyph.width + 1)), int(rng.integers(size - glyph.height + 1))))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    pixels = np.asarray(image, dtype=np.float32) * rng.uniform(0.7, 1.0)
    pixels += rng.normal(0, rng.uniform(0, 12), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def generate(
    out: Path,
    per_split: dict[str, int],
    size: int = 90,
    seed: int = 0,
    symbols: str = ALPHABET,
    font_dirs: Sequence[str] = FONT_DIRS,
) -> int:
    """Write `per_split[split]` images of each symbol under `out/split/<class folder>/` for splits among
    train, val and test; return the count."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; pass a new folder to --out")
    fonts = load_fonts(font_dirs, symbols)
    # One random stream per split, so that changing one split's size leaves the others' images alone.
    rngs = dict(zip(SPLITS, map(np.random.default_rng, np.random.SeedSequence(seed).spawn(len(SPLITS))), strict=True))
    jobs = [(split, symbol, i) for split, count in per_split.items() for symbol in symbols for i in range(count)]
    for split, symbol, i in track(jobs, description=f"{len(fonts)} fonts → {out}"):
        folder = out / split / folder_name(symbol)
        folder.mkdir(parents=True, exist_ok=True)
        draw_sample(symbol, fonts, size, rngs[split]).save(folder / f"{i:05d}.png")
    return len(jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    parser.add_argument("--per-class", type=int, default=200, help="training images per class (200)")
    parser.add_argument(
        "--val-per-class",
        type=int,
        default=0,
        help="validation images per class (0: data=chars holds data.val_size out of train)",
    )
    parser.add_argument("--test-per-class", type=int, default=None, help="test images per class (per-class / 4)")
    parser.add_argument("--size", type=int, default=90, help="image side in pixels (90)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--font-dirs",
        nargs="*",
        default=list(FONT_DIRS),
        help="folders searched for .ttf/.otf fonts; none: only Pillow's built-in font",
    )
    args = parser.parse_args(argv)
    test = max(args.per_class // 4, 1) if args.test_per_class is None else args.test_per_class
    with exit_on_user_error():
        counts = {"train": args.per_class, "val": args.val_per_class, "test": test}
        if min(counts.values()) < 0 or args.per_class == 0 or args.size < 8:
            raise UserError("--per-class must be positive, the other counts 0 or more, and --size at least 8")
        total = generate(
            args.out, {split: n for split, n in counts.items() if n}, args.size, args.seed, font_dirs=args.font_dirs
        )
    print(
        f"wrote {total} images of {len(ALPHABET)} classes to {args.out}; "
        f"train with: {command('train', 'data=chars', f'data.root={args.out}')}"
    )


if __name__ == "__main__":
    main()

"""What every benchmark's command line starts with: its help from its module's docstring, and the data it reads."""

import argparse


def bench_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """`python -m <prog>`'s parser, described by the first paragraph of `doc`, with `--data-root` (the slice)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-root", default="../shared/data/cifar10-slice", help="holds cifar-10-batches-py/")
    return parser

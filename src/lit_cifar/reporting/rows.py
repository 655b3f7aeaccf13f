"""A table row of one run, as the table and the figures read it."""

Curve = list[tuple[int, float]]  # (epoch, val/acc) pairs


def row_value(row: dict, column: str) -> object:
    """A result column of the row, or else the run's override of that key ('' when it set none)."""
    return row[column] if column in row else (row["overrides"] or {}).get(column, "")

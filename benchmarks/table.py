"""Plain-text and Markdown tables for the benchmark figures."""


def render(headers, rows):
    """Columns aligned with two spaces between them; text left, figures right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    numeric = [all(_is_figure(row[i]) for row in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if right else str(c).ljust(w)
                         for c, w, right in zip(cells, widths, numeric)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def markdown(headers, rows):
    """A GitHub-flavoured Markdown table, figures right-aligned."""
    numeric = [all(_is_figure(row[i]) for row in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_figure(text):
    """A number, possibly with a unit or an x for a ratio, or n/a."""
    text = str(text).strip()
    if text in ("n/a", "-"):
        return True
    head = text.split()[0].rstrip("x")
    try:
        float(head)
    except ValueError:
        return False
    return True

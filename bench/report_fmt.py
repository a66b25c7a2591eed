"""bench/report_fmt.py: number formatting shared by bench/report.py and
bench/report_issue16.py (one place, so every table rounds the same way)."""


def fnum(v, nd=None):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    if nd is not None:
        return f"{v:,.{nd}f}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(n, l):
    if n is None or l is None or not isinstance(n, (int, float)) or not isinstance(l, (int, float)):
        return "–"
    if isinstance(n, bool) or isinstance(l, bool):
        return "–"
    if l == 0:
        return "–" if n == 0 else "∞"
    r = n / l
    if r >= 100:
        return f"{r:,.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"

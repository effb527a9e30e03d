"""Progress messages on stderr (stdout stays for results), never interpreted as rich markup."""

from rich.console import Console

console = Console(stderr=True, highlight=False)


def log(message: str) -> None:
    console.print(f"qadapt: {message}", markup=False)


def progress(iterable, description: str, total: int | None = None):
    """A transient rich progress bar on stderr around ``iterable`` (rich's ``track``)."""
    from rich.progress import track

    return track(iterable, description=description, total=total, console=console, transient=True)

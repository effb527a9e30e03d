"""Progress messages on stderr (stdout stays for results), never interpreted as rich markup."""

from rich.console import Console

console = Console(stderr=True, highlight=False)


def log(message: str) -> None:
    console.print(f"qadapt: {message}", markup=False)

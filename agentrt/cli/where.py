"""Where a command's app and database come from, checked before anything opens them:
agentrt.toml's ``[agentrt]`` table, and the SQLite file that --db (or the toml, or an app
factory's default db=) names.

A command never writes agentrt's tables into a SQLite file that holds another
application's tables: a typo'd --db is said, and the file is left as it was.
"""

from pathlib import Path

from agentrt.cli.usage import CliError

__all__ = ["TOML", "app_from_toml", "check_database"]

TOML = "agentrt.toml"
"""The file in the working directory that may name the app and its database."""

_SQLITE_HEADER = b"SQLite format 3\x00"
_TOML_KINDS: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "a table",
}
_WANTED = {
    "app": 'a string, app = "module:attribute" (e.g. "myapp:build_runtime")',
    "db": 'a string, db = "agentrt.db" (a SQLite file or a postgresql:// URL)',
}


def app_from_toml() -> tuple[str | None, str | None]:
    """The app and the database that agentrt.toml in the working directory names under
    ``[agentrt]``, None for either it leaves out (both, without the file). CliError naming
    the file, the key and the shape wanted for a value of another shape."""
    path = Path(TOML)
    if not path.is_file():
        return None, None
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {TOML}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{TOML} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{TOML} is not valid TOML: {exc}") from None
    section = data.get("agentrt", {})
    if not isinstance(section, dict):
        raise CliError(
            f"{TOML}: agentrt must be a table ([agentrt], then app = ... and db = ... under "
            f"it), got {_kind(section)}"
        )
    unknown = sorted(str(k) for k in section if k not in _WANTED)
    if unknown:
        # A typo ("ap", "database") would be read as nothing: the app or the db not given.
        raise CliError(
            f"{TOML}: [agentrt] takes {' and '.join(_WANTED)} only, not {unknown[0]!r}; "
            "check its spelling (other tools' settings go in tables of their own)"
        )
    found: list[str | None] = []
    for key, wanted in _WANTED.items():
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            # Its kind only: a db value may be a URL with a password in it.
            raise CliError(f"{TOML}: [agentrt] {key} must be {wanted}, got {_kind(value)}")
        found.append(value)
    return found[0], found[1]


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return next((k for t, k in _TOML_KINDS.items() if type(value) is t), "a date or a time")


def check_database(db: str, *, create: bool) -> None:
    """CliError unless ``db`` names agentrt's SQLite database, or (with ``create``) a
    SQLite file with no other application's tables, or nothing yet.

    A ``postgresql://`` URL is left to its server; a ``sqlite:///`` URL's file is checked
    as a path is, and another scheme refused. Only reads the file (a new database is the
    runtime's to make)."""
    shown = db
    if "://" in db:
        from agentrt.errors import ConfigError
        from agentrt.runtime import sqlite_file

        try:
            named = sqlite_file(db)  # refuses another scheme, its password hidden
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        if named is None:
            return  # a database server: it says whether the database exists
        db = named
    path = Path(db)
    if path.is_dir():
        raise CliError(f"--db {shown!r} is a directory; give the SQLite file in it")
    if not path.exists():
        if create:
            return
        raise CliError(
            f"no database at {shown!r}; check the path (this command reads an existing "
            "database and does not make a new one)"
        )
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise CliError(f"cannot read database {shown!r}: {exc.strerror}") from None
    if not header:
        return  # an empty file: agentrt's database once the runtime opens it
    if header != _SQLITE_HEADER:
        raise CliError(
            f"{shown!r} is not a SQLite database (it does not start with SQLite's header); "
            "check --db"
        )
    _check_tables(path, shown)


def _check_tables(path: Path, shown: str) -> None:
    """CliError unless the SQLite file at ``path`` is agentrt's, or holds no tables yet."""
    import sqlite3

    from agentrt.runtime import other_applications_tables

    try:
        tables = other_applications_tables(path)
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return  # another process is writing it; the runtime waits longer, then says so
        raise CliError(
            f"cannot open database {shown!r}: {exc}; is it an agentrt SQLite database?"
        ) from None
    if not tables:
        return
    listed = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise CliError(
        f"{shown!r} is another application's SQLite database (tables {listed}; none of "
        "agentrt's), left as it is: check --db (or AGENTRT_DB, or db in agentrt.toml) and "
        "give agentrt's own database, the file your app's runtime opens"
    )

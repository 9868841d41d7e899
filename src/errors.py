"""The one exception type for mistakes a user can fix: `run.py` prints it as one line, exit 2."""


class UserError(Exception):
    """Bad input or flags: the message names the file, row or column and what to do."""

"""The one exception type a user should ever see."""


class EmbedforgeError(Exception):
    """A user-facing error: one line naming the file, row or key and what was expected."""
